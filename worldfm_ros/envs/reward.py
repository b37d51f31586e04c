"""Rewards: a function of one transition. Pass any ``Callable[[Transition], float]`` to an env."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from worldfm_ros.camera import invert_pose


@dataclass
class Transition:
    """One env step.

    previous / current: (4, 4) base_link pose in the odom frame before and after the step, metres.
    action: the commanded action (the env's action space). dt: simulated seconds.
    collision: the motion was blocked by an obstacle. done: the episode ended (collision or left the scene).
    min_obstacle_distance: metres from base_link to the nearest obstacle after the step (inf if none).
    """

    previous: np.ndarray
    current: np.ndarray
    action: np.ndarray
    dt: float
    collision: bool
    done: bool
    min_obstacle_distance: float


RewardFn = Callable[[Transition], float]


@dataclass
class ForwardProgress:
    """Metres travelled along the previous heading, minus ``collision_penalty`` on a blocked move."""

    collision_penalty: float = 1.0

    def __call__(self, t: Transition) -> float:
        forward = (invert_pose(t.previous) @ t.current)[0, 3]
        return float(forward - (self.collision_penalty if t.collision else 0.0))
