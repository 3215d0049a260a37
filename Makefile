# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# The offline CPU build of torch on the build machines; GPU users install their own torch.
TORCH_SPEC ?= torch==2.13.0
FMNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: demo test lint bench data clean

$(VENV)/.stamp-venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

$(VENV)/.stamp-install: $(VENV)/.stamp-venv pyproject.toml
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e .
	touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-install pyproject.toml
	$(PIP) install -q -e ".[dev]"
	touch $@

# Fashion-MNIST: Debian's package when apt is usable, else cpoison downloads it (SHA-256 checked).
data: $(VENV)/.stamp-install
	@if [ ! -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null \
	  && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) \
	  || echo "apt could not install dataset-fashion-mnist; cpoison will try to download it"; \
	fi
	$(VENV)/bin/cpoison data fashion-mnist

demo: data
	$(VENV)/bin/cpoison demo

test: $(VENV)/.stamp-dev data
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest tests

lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
