"""Z-buffered point-cloud rendering of scene anchors, bit-identical on CPU and CUDA.

The renderer's names are imported on first use: the package's light modules (``antialias``,
``fill``) are read by configuration code that must not pay for importing torch.
"""

__all__ = ["PointCloudRenderer", "RenderResult", "RenderTensors"]


def __getattr__(name: str):
    if name == "RenderResult":
        from worldfm_ros.render.result import RenderResult

        return RenderResult
    if name in __all__:
        from worldfm_ros.render import pointcloud

        return getattr(pointcloud, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
