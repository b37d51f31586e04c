"""The robot's sensors: the camera rig (``rig``: cameras, mounts, optical axes; ``sensor_rig``: the
rig file of cameras and IMUs), and the models applied after the frame backend: lens distortion,
photometric and depth noise, motion blur, rolling shutter, and the IMU. Each model is off by
default; nothing here knows about ROS."""
