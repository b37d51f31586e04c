"""Sensor models applied after the frame backend: lens distortion, photometric and depth noise,
motion blur, rolling shutter, and the IMU. Each is off by default; nothing here knows about ROS."""
