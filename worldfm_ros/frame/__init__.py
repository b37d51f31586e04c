"""Pose -> image: the world rendered at each camera, the reference keyframe chosen, the frame
backend run (``pipeline``); reference selection (``reference``) and the compatibility profiles
(``profiles``) it owns."""
