"""Pure-Python install of the worldfm_ros library and the ``worldfm`` command.

ROS users build the package with colcon (CMakeLists.txt, package.xml), which also
generates the msg/srv interfaces. This file serves machines without ROS (training
clusters, offline rendering): ``pip install .`` gives the library core and CLI.
"""

from setuptools import find_packages, setup

setup(
    name="worldfm_ros",
    version="0.1.0",
    description="A ROS 2 camera simulator for generated worlds (WorldFM-style frame model)",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["worldfm_ros", "worldfm_ros.*"]),
    install_requires=[
        "numpy>=1.26", "scipy>=1.11", "pyyaml>=6", "plyfile>=1.0", "opencv-python-headless>=4.9",
        "imageio>=2.34", "tqdm>=4.66", "rich>=13", "safetensors>=0.4", "torch>=2.4",
    ],
    extras_require={
        "scene": ["open3d>=0.19"],
        "vae": ["diffusers>=0.30"],
        "onnx": ["onnx>=1.16", "onnxscript>=0.1", "onnxruntime>=1.18"],
        "rl": ["gymnasium>=1.0"],
        "bags": ["rosbags>=0.10", "mcap>=1.1", "mcap-ros2-support>=0.5"],
    },
    entry_points={"console_scripts": ["worldfm = worldfm_ros.cli:main"]},
)
