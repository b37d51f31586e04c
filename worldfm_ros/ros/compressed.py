"""Compressed image topics as image_transport names and writes them (SimConfig.compressed).

Beside ``<camera>/image_raw`` the node publishes ``<camera>/image_raw/compressed``
(sensor_msgs/CompressedImage) the way ``compressed_image_transport``'s publisher does: the
image as BGR through OpenCV's jpeg or png encoder, ``format`` "rgb8; jpeg compressed bgr8" or
"rgb8; png compressed bgr8". Beside ``<camera>/depth/image_raw`` it publishes
``<camera>/depth/image_raw/compressedDepth`` the way ``compressed_depth_image_transport``
does for 32FC1 depth: its 12-byte ConfigHeader (int32 format = 0, INV_DEPTH; float32
depthParam[2] = quantA, quantB), then a 16-bit PNG of the quantised inverse depth
q = quantA / z + quantB with quantA = z0 (z0 + 1), quantB = 1 − quantA / depth_max
(z0 = depth_quantization); 0 where z is NaN, 0 or at least depth_max; ``format``
"32FC1; compressedDepth png". Its subscriber decodes z = quantA / (q − quantB); q is truncated
to an integer, so the decoded depth is at most z² / quantA farther (2.5 mm at 5 m with the defaults). Depths nearer than
quantA / (65535 − quantB) (0.152 m with the defaults) saturate at q = 65535 rather than wrap
as the C++ cast may.

Subscribers with image_transport (``image_transport republish``, rqt_image_view, RViz,
Foxglove) pick the topics up by these names; ``worldfm record --images compressed`` records them
instead of the raw images.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from worldfm_ros.sim.config import CompressedConfig

#: the ConfigHeader's ``format`` for quantised inverse depth (compression_common.h, INV_DEPTH)
INV_DEPTH = 0


def image_format(codec: str) -> str:
    """The CompressedImage ``format`` compressed_image_transport writes for an rgb8 image."""
    return f"rgb8; {codec} compressed bgr8"


DEPTH_FORMAT = "32FC1; compressedDepth png"


def encode_image(rgb: np.ndarray, cfg: CompressedConfig) -> bytes:
    """(H, W, 3) uint8 RGB -> the bytes of its jpeg or png (BGR, as OpenCV and image_transport write it)."""
    if cfg.image == "jpeg":
        ext, params = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
    else:
        ext, params = ".png", [cv2.IMWRITE_PNG_COMPRESSION, cfg.png_level]
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {rgb.shape} image as {cfg.image}")
    return buf.tobytes()


def depth_quantisation(cfg: CompressedConfig) -> tuple[float, float]:
    """(quantA, quantB) of compressed_depth_image_transport, in float32 as it computes them."""
    z0, z_max = np.float32(cfg.depth_quantization), np.float32(cfg.depth_max)
    a = np.float32(z0 * (z0 + np.float32(1.0)))
    return float(a), float(np.float32(np.float32(1.0) - a / z_max))


def encode_depth(depth: np.ndarray, cfg: CompressedConfig) -> bytes:
    """(H, W) float32 metres (NaN or 0 = no data) -> ConfigHeader + 16-bit PNG of the inverse depth code."""
    a, b = depth_quantisation(cfg)
    z = np.asarray(depth, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        valid = np.isfinite(z) & (z > 0) & (z < np.float32(cfg.depth_max))
        q = np.where(valid, np.float32(a) / z + np.float32(b), 0.0)
    code = np.clip(q, 0, 65535).astype(np.uint16)  # truncation toward zero, as the C++ cast
    ok, png = cv2.imencode(".png", code, [cv2.IMWRITE_PNG_COMPRESSION, cfg.depth_png_level])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {z.shape} depth code as png")
    return struct.pack("<iff", INV_DEPTH, a, b) + png.tobytes()


class CompressedOutputs:
    """The compressed publishers of one camera beside its raw ones (relative names, as
    image_transport derives them from ``<camera>/image_raw`` and ``<camera>/depth/image_raw``)."""

    def __init__(self, node, camera: str, cfg: CompressedConfig, depth: bool, qos) -> None:
        from sensor_msgs.msg import CompressedImage

        self._msg, self.cfg = CompressedImage, cfg
        self.image = node.create_publisher(CompressedImage, f"{camera}/image_raw/compressed", qos) if cfg.image else None
        self.depth = (node.create_publisher(CompressedImage, f"{camera}/depth/image_raw/compressedDepth", qos)
                      if cfg.depth and depth else None)

    def publish(self, header, rgb: np.ndarray, depth: np.ndarray) -> None:
        """Publish the frame's compressed image and depth; ``header``: the raw image's std_msgs/Header."""
        if self.image is not None:
            self.image.publish(self._msg(header=header, format=image_format(self.cfg.image),
                                         data=encode_image(rgb, self.cfg)))
        if self.depth is not None:
            self.depth.publish(self._msg(header=header, format=DEPTH_FORMAT, data=encode_depth(depth, self.cfg)))
