# The two commands of the README:
#   make demo   set up everything, then fine-tune a classifier (examples/faces) and a detector
#               (examples/glyphs) and predict with each
#   make test   set up everything, then run the test suite
SHELL := /bin/bash
export HEADSTART_VENV ?= $(CURDIR)/.venv
VENV := $(HEADSTART_VENV)

.PHONY: setup weights demo test

setup:
	@scripts/setup.sh >/dev/null

weights: setup
	@scripts/fetch-weights.sh $(VENV)

demo: weights
	rm -rf runs/demo
	$(VENV)/bin/headstart fit examples/faces --model mobilenetv2_100 --out runs/demo
	$(VENV)/bin/headstart predict runs/demo examples/faces/face/face_000.png examples/faces/non_face/non_face_000.png --top-k 2
	rm -rf runs/demo-detect
	$(VENV)/bin/headstart fit examples/glyphs --model mobilenetv2_100 --epochs 20 --image-size 256 --out runs/demo-detect
	$(VENV)/bin/headstart predict runs/demo-detect examples/glyphs/test --save-images runs/demo-detect/drawn

test: weights
	$(VENV)/bin/python -m pytest -q -m "slow or not slow" tests
