"""Depth maps from a separate depth camera, registered into the colour camera.

A structured-light or ToF sensor such as the Kinect v1 records depth with its own (IR) camera:
its own intrinsics and a few centimetres beside the colour camera. Captures that store these
raw maps (7-Scenes does; TUM RGB-D and ICL-NUIM store registered ones) must have every depth
pixel moved into the colour image before depth and colour describe the same pixel, which is
what ``depth_image_proc/register`` does in ROS. Without it the anchor's colours are sampled
from the wrong pixels: on 7-Scenes, whose colour camera has f = 525 px while its documented
intrinsics (f = 585 px) are the depth camera's, mean reprojection colour error between frames
20 apart drops from 0.065 to 0.047 (scale 0-1) with registration.

``register_depth`` forward-projects every depth pixel into the colour camera and keeps the
nearest surface per colour pixel (a z-buffer); where the colour camera magnifies (its focal
length above the depth camera's), each depth pixel covers its whole footprint so that no
pinholes open.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldfm_ros.build.backproject import backproject_pixels

# Kinect v1 colour camera as the visual-localisation literature uses it for 7-Scenes (DSAC*, ACE,
# Brachmann et al. 2021 "On the limits of pseudo ground truth in visual camera re-localisation"):
# f = 525 px at the 640x480 principal point, and the depth->colour extrinsic of the LIRIS Kinect
# calibration (projet.liris.cnrs.fr/voir/activities-dataset/kinect-calibration.html).
KINECT_V1_COLOR_K = np.array([[525.0, 0.0, 320.0], [0.0, 525.0, 240.0], [0.0, 0.0, 1.0]])
KINECT_V1_COLOR_T_DEPTH = np.array([
    [9.9996518012567637e-01, 2.6765126468950343e-03, -7.9041012313000904e-03, -2.5558943178152542e-02],
    [-2.7409311281316700e-03, 9.9996302803027592e-01, -8.1504520778013286e-03, 1.0109636268061706e-04],
    [7.8819942130445332e-03, 8.1718328771890631e-03, 9.9993554558014031e-01, 2.0318321729487039e-03],
    [0.0, 0.0, 0.0, 1.0],
])
# The intrinsics 7-Scenes documents (those of its depth camera).
SEVEN_SCENES_DEPTH_K = np.array([[585.0, 0.0, 320.0], [0.0, 585.0, 240.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class DepthCamera:
    """The depth camera of a capture whose depth maps are not registered to its colour images.

    K: (3, 3) depth-camera intrinsics, pixels, for the stored depth maps' size.
    color_T_depth: (4, 4) depth-camera frame -> colour-camera frame, OpenCV axes, metres.
    """

    K: np.ndarray
    color_T_depth: np.ndarray


def register_depth(depth: np.ndarray, depth_camera: DepthCamera, color_K: np.ndarray,
                   color_size: tuple[int, int]) -> np.ndarray:
    """The depth map seen from the colour camera.

    depth: (Hd, Wd) z-depth of the depth camera, metres, <= 0 or non-finite = no data.
    color_K: (3, 3) colour intrinsics, pixels; color_size: (W, H) of the colour image.
    Returns (H, W) float32 z-depth along the colour camera's axis, metres, 0 where no depth
    pixel lands (outside the depth camera's view or behind a nearer surface's occlusion shadow).
    """
    w, h = color_size
    z = np.asarray(depth, np.float64)
    valid = np.isfinite(z) & (z > 0)
    v, u = np.nonzero(valid)
    points = backproject_pixels(u.astype(np.float64), v.astype(np.float64), z[valid], depth_camera.K,
                                depth_camera.color_T_depth)  # colour-camera frame
    zc = points[:, 2]
    K = np.asarray(color_K, np.float64)
    front = zc > 1e-6
    points, zc = points[front], zc[front]
    uc = K[0, 0] * points[:, 0] / zc + K[0, 2]
    vc = K[1, 1] * points[:, 1] / zc + K[1, 2]
    # Half the colour-pixel footprint of one depth pixel, in colour pixels: every colour pixel whose
    # centre it covers takes the depth (at least the nearest one). The 1e-6 px of slack makes
    # neighbouring footprints overlap instead of both missing a centre to rounding error.
    half = max(0.5, 0.5 * max(K[0, 0] / depth_camera.K[0, 0], K[1, 1] / depth_camera.K[1, 1])) + 1e-6
    u0, v0 = np.ceil(uc - half).astype(np.int64), np.ceil(vc - half).astype(np.int64)
    out = np.full(h * w, np.inf)
    span = int(np.ceil(2 * half)) + 1
    for du in range(span):
        ui = u0 + du
        for dv in range(span):
            vi = v0 + dv
            hit = (ui <= uc + half) & (vi <= vc + half) & (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
            np.minimum.at(out, vi[hit] * w + ui[hit], zc[hit])
    out[~np.isfinite(out)] = 0.0
    return out.reshape(h, w).astype(np.float32)
