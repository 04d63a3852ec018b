# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv when it is missing. torch / torchvision: the build that fits the machine
# (scripts/install_torch.py): a local CPU wheel on a machine without an NVIDIA GPU when pip's
# wheel folder has one for this Python, else the package index's default; TORCH_INDEX=URL takes
# them from that index (e.g. https://download.pytorch.org/whl/cpu or .../whl/cu126).
PY ?= python3.11
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean wheel-check

$(BIN)/python:
	@$(PY) -c "import sys; assert sys.version_info >= (3, 10)" 2>/dev/null || \
		{ echo "make: the interpreter PY=$(PY) is missing, broken or older than Python 3.10; install it or pass PY=python3.X" >&2; exit 2; }
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml scripts/install_torch.py
	$(BIN)/python scripts/install_torch.py $(if $(TORCH_INDEX),--index $(TORCH_INDEX),)
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vidreid demo --out outputs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

wheel-check:
	PY=$(PY) TORCH_INDEX=$(TORCH_INDEX) .ci/wheel_check.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_synth.py

clean:
	rm -rf outputs build *.egg-info
