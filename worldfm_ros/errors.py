"""Exception types. Every message is one line naming the file/field and what was expected."""

import re

# Third-party loaders suggest switching their safety off when they refuse a file (torch:
# "weights_only=False will likely succeed", numpy: "allow_pickle=True"); such advice is never
# passed on.
_UNSAFE_HINT = re.compile(r"weights_only|allow_pickle|pickle|trust", re.IGNORECASE)


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


def library_reason(exc: BaseException) -> str:
    """One line about why a third-party reader failed: its message's first line, or only the
    exception type when the message advises unsafe loading."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not first or _UNSAFE_HINT.search(first):
        return type(exc).__name__
    return f"{type(exc).__name__}: {first}"
