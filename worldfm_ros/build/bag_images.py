"""sensor_msgs/Image and CompressedImage messages (as rosbags deserialises them) to numpy.

Colour: rgb8, bgr8, rgba8, bgra8, mono8 (and 8UC1 / 8UC3, read as mono8 / bgr8 as cv_bridge
does) Images; jpeg and png CompressedImages. Returned as (H, W, 3) uint8 RGB.

Depth: 16UC1 / mono16 Images in millimetres (REP-118), 32FC1 in metres; CompressedImages of the
``compressed_depth_image_transport`` ("16UC1; compressedDepth png": a 12-byte header, then a
16-bit PNG of millimetres; "32FC1; compressedDepth png": the PNG holds quantised inverse depth,
depth = a / (q - b) with a, b from the header) and plain 16-bit PNGs. Returned as (H, W) float32
z-depth in metres, 0 = no data (NaN, inf, 0 and negative values alike).
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from worldfm_ros.errors import SceneError

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED)

_COLOR_CHANNELS = {"rgb8": 3, "bgr8": 3, "8UC3": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1}
COLOR_ENCODINGS = tuple(_COLOR_CHANNELS)
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
#: the CompressedImage formats read (the part before ';' names the original encoding, if any)
COMPRESSED_FORMATS = ("jpeg", "png", "compressedDepth png")
_COMPRESSED_DEPTH_HEADER = 12  # int32 format + float32 depthParam[2]


def _raw_pixels(msg, dtype: np.dtype, channels: int, topic: str) -> np.ndarray:
    """(H, W[, C]) array of an Image's data, row padding (step) and byte order handled."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    dtype = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    row = w * channels * dtype.itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    if h == 0 or w == 0 or step < row or data.size < h * step:
        raise SceneError(f"{topic}: Image data holds {data.size} bytes, expected {h} rows of step {step} >= {row} "
                         f"for {w}x{h} {msg.encoding}")
    pixels = data[: h * step].reshape(h, step)[:, :row].copy().view(dtype)
    return pixels.reshape(h, w, channels) if channels > 1 else pixels.reshape(h, w)


def _format_parts(fmt: str) -> tuple[str, str]:
    """(original encoding or '', compression) of a CompressedImage format string."""
    head, sep, tail = fmt.partition(";")
    return (head.strip(), tail.strip()) if sep else ("", head.strip())


def _imdecode(msg, topic: str, what: str) -> np.ndarray:
    data = np.asarray(msg.data, dtype=np.uint8)
    out = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if out is None:
        raise SceneError(f"{topic}: CompressedImage data ({msg.format!r}, {data.size} bytes) does not decode as {what}")
    return out


def decode_color(msg, msgtype: str, topic: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a colour Image / CompressedImage message on ``topic``."""
    if msgtype == COMPRESSED:
        _, compression = _format_parts(msg.format)
        if "compressedDepth" in compression or compression.split()[0:1] not in (["jpeg"], ["jpg"], ["png"]):
            raise SceneError(f"{topic}: CompressedImage format {msg.format!r} is not a colour format "
                             f"(expected jpeg or png)")
        image = _imdecode(msg, topic, "an image")
        if image.dtype != np.uint8:
            image = (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else image.astype(np.uint8)
        if image.ndim == 2:
            return np.repeat(image[..., None], 3, axis=2)
        code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        return cv2.cvtColor(image, code)
    enc = msg.encoding
    if enc not in _COLOR_CHANNELS:
        raise SceneError(f"{topic}: Image encoding {enc!r} is not a supported colour encoding "
                         f"(expected one of {', '.join(COLOR_ENCODINGS)})")
    pixels = _raw_pixels(msg, np.uint8, _COLOR_CHANNELS[enc], topic)
    if enc in ("mono8", "8UC1"):
        return np.repeat(pixels[..., None], 3, axis=2)
    if enc in ("bgr8", "8UC3", "bgra8"):
        pixels = pixels[..., 2::-1]
    return np.ascontiguousarray(pixels[..., :3])


def _metres(depth: np.ndarray, scale: float) -> np.ndarray:
    z = depth.astype(np.float32) * np.float32(scale)
    z[~np.isfinite(z) | (z < 0)] = 0.0
    return z


def decode_depth(msg, msgtype: str, topic: str, depth_scale: float | None = None) -> np.ndarray:
    """(H, W) float32 z-depth in metres (0 = no data) of a depth Image / CompressedImage on ``topic``.

    depth_scale: metres per unit of integer depth (default 0.001: millimetres, REP-118).
    """
    mm = 0.001 if depth_scale is None else depth_scale
    if msgtype == COMPRESSED:
        original, compression = _format_parts(msg.format)
        if "compressedDepth" in compression:
            if "rvl" in compression.lower():
                raise SceneError(f"{topic}: CompressedImage format {msg.format!r} (RVL) is not supported "
                                 f"(record depth as compressedDepth png or raw 16UC1 / 32FC1)")
            data = np.asarray(msg.data, dtype=np.uint8)
            if data.size <= _COMPRESSED_DEPTH_HEADER:
                raise SceneError(f"{topic}: compressedDepth data of {data.size} bytes has no PNG after its header")
            _, quant_a, quant_b = struct.unpack("<iff", data[:_COMPRESSED_DEPTH_HEADER].tobytes())
            image = cv2.imdecode(data[_COMPRESSED_DEPTH_HEADER:], cv2.IMREAD_UNCHANGED)
            if image is None or image.dtype != np.uint16 or image.ndim != 2:
                raise SceneError(f"{topic}: compressedDepth data ({msg.format!r}) is not a 16-bit single-channel PNG")
            if original == "32FC1":
                q = image.astype(np.float32)
                with np.errstate(divide="ignore"):
                    z = np.where(image > 0, quant_a / (q - quant_b), 0.0).astype(np.float32)
                return _metres(z, 1.0)
            if original in ("16UC1", "mono16", ""):
                return _metres(image, mm)
            raise SceneError(f"{topic}: compressedDepth of encoding {original!r} is not supported "
                             f"(expected 16UC1 or 32FC1)")
        if compression.split()[0:1] == ["png"]:
            image = _imdecode(msg, topic, "a PNG")
            if image.dtype == np.uint16 and image.ndim == 2:
                return _metres(image, mm)
        raise SceneError(f"{topic}: CompressedImage format {msg.format!r} is not a depth format "
                         f"(expected '16UC1; compressedDepth png', '32FC1; compressedDepth png' or a 16-bit png)")
    enc = msg.encoding
    if enc in ("16UC1", "mono16"):
        return _metres(_raw_pixels(msg, np.uint16, 1, topic), mm)
    if enc == "32FC1":
        return _metres(_raw_pixels(msg, np.float32, 1, topic), 1.0)
    raise SceneError(f"{topic}: Image encoding {enc!r} is not a supported depth encoding "
                     f"(expected one of {', '.join(DEPTH_ENCODINGS)})")
