# The two commands a newcomer needs (see README.md):
#   make demo   set up everything, then run the simulator demo on the bundled scene
#   make test   set up everything, then run the test-suite
SHELL := /bin/bash
.PHONY: setup demo test bench

setup:
	@bash scripts/setup.sh

demo: setup
	@source scripts/env.sh && worldfm demo

test: setup
	@source scripts/env.sh && python -m pytest -q

bench: setup
	@source scripts/env.sh && worldfm bench-render && worldfm bench-model
