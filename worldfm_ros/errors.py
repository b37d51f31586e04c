"""Exception types. Every message is one line naming the file/field and what was expected."""


class WorldFMError(Exception):
    """Base class of every error raised on bad input by worldfm_ros."""


class SceneError(WorldFMError, ValueError):
    """A scene file or builder input is missing, unreadable, corrupt or inconsistent."""


class CameraError(WorldFMError, ValueError):
    """An intrinsics matrix, image size or pose is invalid."""


class ConfigError(WorldFMError, ValueError):
    """A configuration file or parameter has a wrong type or value."""


class CheckpointError(WorldFMError, ValueError):
    """A model checkpoint is missing, unsafe, or does not match the model config."""


class BackendUnavailable(WorldFMError, RuntimeError):
    """A frame backend is unknown or cannot start here (missing library, device or model file)."""
