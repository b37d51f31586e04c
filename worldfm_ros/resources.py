"""Where bundled data lives: the default scene and model, in a source checkout or an install."""

from __future__ import annotations

from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parents[1]


def share_dir() -> Path:
    """The package's data root: the source checkout, else the ament share directory."""
    if (_SOURCE_ROOT / "package.xml").is_file():
        return _SOURCE_ROOT
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("worldfm_ros"))


def default_scene_path() -> Path:
    """The bundled default scene (a procedural room made by our own builders)."""
    return share_dir() / "scenes" / "default_room"


def splat_scene_path() -> Path:
    """The bundled splat world: the default room's points as surface discs (``scene-build splats``)."""
    return share_dir() / "scenes" / "default_room_splats"


def demo_scene_path() -> Path:
    """The bundled photorealistic scene ``worldfm demo`` drives through: the ICL-NUIM living room
    (CC BY 3.0) as Gaussian splats fitted to its recording, the room closed by its layout."""
    return share_dir() / "scenes" / "icl_livingroom_splats"


DEFAULT_MODEL = "worldfm_res128.safetensors"


def default_model_path() -> Path:
    """The bundled default frame model (trained by this package's pipeline; see models/README.md)."""
    return share_dir() / "models" / DEFAULT_MODEL


def config_dir() -> Path:
    return share_dir() / "config"
