"""Opening worlds: a scene on disk names its kind (``kind:`` in scene.yaml; 'pointcloud' when
absent, as in every scene written before kinds existed), and ``WORLD_KINDS`` maps each kind to
the function that loads it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from worldfm_ros.errors import SceneError
from worldfm_ros.world.base import World

#: loader(path, device) -> World of each kind of world a scene file may name
WORLD_KINDS: dict[str, Callable[[Path, str], World]] = {}


def _load_pointcloud(path: Path, device: str) -> World:
    from worldfm_ros.scene.store import load_scene
    from worldfm_ros.world.pointcloud import PointCloudWorld

    return PointCloudWorld(load_scene(path), device=device)


def _load_splats(path: Path, device: str) -> World:
    from worldfm_ros.world.splats import load_splat_world

    return load_splat_world(path, device)


WORLD_KINDS["pointcloud"] = _load_pointcloud
WORLD_KINDS["splats"] = _load_splats


def register_world_kind(kind: str, loader: Callable[[Path, str], World]) -> None:
    """Make scenes whose scene.yaml says ``kind: <kind>`` load through ``loader(path, device)``."""
    WORLD_KINDS[kind] = loader


def scene_kind(path: str | os.PathLike) -> str:
    """The ``kind`` a scene at ``path`` (directory, its scene.yaml, or .npz) declares; 'pointcloud'
    when it declares none. SceneError for a scene.yaml that cannot be read or a kind that is not text."""
    path = Path(path)
    yaml_path = path / "scene.yaml" if path.is_dir() else path
    if yaml_path.suffix.lower() not in (".yaml", ".yml") or not yaml_path.is_file():
        return "pointcloud"  # .npz archives and missing files: the scene loader reports on them
    import yaml

    try:
        with open(yaml_path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "pointcloud"  # the scene loader names the fault with its line
    kind = doc.get("kind", "pointcloud") if isinstance(doc, dict) else "pointcloud"
    if not isinstance(kind, str):
        raise SceneError(f"{yaml_path}: kind: expected one of {sorted(WORLD_KINDS)}, got a {type(kind).__name__}")
    return kind


def load_world(path: str | os.PathLike, device: str = "cpu") -> World:
    """The world saved at ``path``, its renderers on torch ``device``. SceneError names the file and
    field on an unknown kind or a broken scene."""
    kind = scene_kind(path)
    if kind not in WORLD_KINDS:
        raise SceneError(f"{path}: kind: expected one of {sorted(WORLD_KINDS)}, got {kind!r}")
    world = WORLD_KINDS[kind](Path(path), device)
    layout = scene_layout(path)
    if layout is not None:
        from worldfm_ros.world.completed import CompletedWorld
        from worldfm_ros.world.layout import load_layout

        world = CompletedWorld(world, load_layout(layout))
    return world


def scene_layout(path: str | os.PathLike) -> Path | None:
    """The layout.yaml a scene folder's scene.yaml names (``layout:``, written by scene-complete),
    else None."""
    path = Path(path)
    yaml_path = path / "scene.yaml" if path.is_dir() else path
    if yaml_path.suffix.lower() not in (".yaml", ".yml") or not yaml_path.is_file():
        return None
    from worldfm_ros.scene.store import _read_yaml, scene_inside

    name = _read_yaml(yaml_path).get("layout")
    return None if name is None else scene_inside(yaml_path, name, f"{yaml_path}: layout")


def open_world(source, device: str = "cpu") -> World:
    """A World from a World (itself), a ``SceneAnchor`` (its point-cloud world), a path, or
    None / '' (the bundled default room)."""
    from worldfm_ros.scene.anchor import SceneAnchor

    if isinstance(source, SceneAnchor):
        from worldfm_ros.world.pointcloud import PointCloudWorld

        return PointCloudWorld(source, device=device)
    if source is not None and not isinstance(source, (str, os.PathLike)):
        if isinstance(source, World):
            return source
        raise SceneError(f"scene: expected a path, a SceneAnchor or a World, got {type(source).__name__}")
    if not source:
        from worldfm_ros.resources import default_scene_path

        source = default_scene_path()
    return load_world(source, device)
