# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv when it is missing; torch/torchvision are pinned (pip takes them from local disk here).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean wheel-check

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vidreid demo --out outputs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

wheel-check:
	PY=$(PY) .ci/wheel_check.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_synth.py

clean:
	rm -rf outputs build *.egg-info
