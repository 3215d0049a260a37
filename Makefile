# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# The offline CPU build of torch on the build machines; GPU users install their own torch.
TORCH_PACKAGE ?= torch==2.13.0
FMNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: demo test docs lint bench data chromium clean

$(VENV)/.stamp-venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

$(VENV)/.stamp-install: $(VENV)/.stamp-venv pyproject.toml
	$(PIP) install -q "$(TORCH_PACKAGE)"
	$(PIP) install -q -e .
	touch $@

# torchcp without its dependencies: the TorchCP adapter's tests need only its split conformal
# classification code, not the graph / LLM / torchsort parts whose packages it requires
# (torchsort compiles against torch); the tests stand in for those modules at import.
$(VENV)/.stamp-dev: $(VENV)/.stamp-install pyproject.toml
	$(PIP) install -q -e ".[dev,ray]"
	$(PIP) install -q --no-deps "torchcp>=1.1"
	touch $@

$(VENV)/.stamp-docs: $(VENV)/.stamp-install pyproject.toml
	$(PIP) install -q -e ".[docs]"
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

# Debian's chromium renders the reproduction report in a test (tests/reproduce); installed
# like the dataset when apt is usable (root), else that test is skipped.
chromium:
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null \
	  && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) \
	  || echo "apt could not install chromium; the report's browser test will be skipped"; \
	fi

demo: data
	$(VENV)/bin/cpoison demo

# The docs are built strictly (any warning fails; not with --quiet, which hides warnings from
# --strict) before the tests, so CI checks them too;
# their Python examples run inside the tests (tests/test_docs_examples.py).
test: $(VENV)/.stamp-dev $(VENV)/.stamp-docs data chromium
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mkdocs build --strict --site-dir site
	$(PY) -m pytest tests

# The documentation site (MkDocs + mkdocstrings, mkdocs.yml) into site/; warnings are errors.
docs: $(VENV)/.stamp-docs
	$(VENV)/bin/mkdocs build --strict --site-dir site

lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .ruff_cache
