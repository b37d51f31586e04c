"""Z-buffered point-cloud rendering of scene anchors, bit-identical on CPU and CUDA."""

from worldfm_ros.render.pointcloud import PointCloudRenderer, RenderResult, RenderTensors

__all__ = ["PointCloudRenderer", "RenderResult", "RenderTensors"]
