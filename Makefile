# The two commands of the README:
#   make demo   set up everything, then fine-tune on the example dataset and predict with the result
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

test: weights
	$(VENV)/bin/python -m pytest -q tests
