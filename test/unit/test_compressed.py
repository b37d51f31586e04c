"""The compressed-topic settings and the compressedDepth code, without ROS."""

import struct

import cv2
import numpy as np
import pytest

from worldfm_ros.config import load_config
from worldfm_ros.errors import ConfigError
from worldfm_ros.ros.compressed import encode_depth
from worldfm_ros.sim.config import CompressedConfig, SimConfig


def test_an_unknown_image_codec_is_refused_naming_the_field_and_the_codecs():
    with pytest.raises(ConfigError, match=r"compressed.image: expected one of \('', 'jpeg', 'png'\), got 'webp'"):
        load_config(SimConfig, {"compressed": {"image": "webp"}})


def test_depth_nearer_than_the_code_reaches_saturates_and_depth_beyond_depth_max_is_no_data():
    cfg = CompressedConfig(depth=True)
    depth = np.array([[0.05, 0.5, 9.99, 10.0, np.nan, 0.0]], dtype=np.float32)
    data = encode_depth(depth, cfg)
    code = cv2.imdecode(np.frombuffer(data[12:], np.uint8), cv2.IMREAD_UNCHANGED)
    a, b = struct.unpack("<ff", data[4:12])
    assert code[0, 0] == 65535 and code[0, 1] == int(a / 0.5 + b)
    assert code[0, 2] > 0 and list(code[0, 3:]) == [0, 0, 0]
