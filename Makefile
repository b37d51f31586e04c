# The two commands a newcomer needs (see README.md):
#   make demo   set up everything, then run the simulator demo on the bundled scene
#   make test   set up everything, then run the test-suite
SHELL := /bin/bash
.PHONY: setup demo test test-unit test-ros bench

setup:
	@bash scripts/setup.sh

demo: setup
	@source scripts/env.sh && worldfm demo

test: setup
	@source scripts/env.sh && python -m pytest -q

# test/unit needs no rclpy, launch or ros2 CLI; test/ros is the rest
test-unit: setup
	@source scripts/env.sh && python -m pytest -q test/unit

test-ros: setup
	@source scripts/env.sh && python -m pytest -q test/ros

bench: setup
	@source scripts/env.sh && worldfm bench-render && worldfm bench-model
