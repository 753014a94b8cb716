# The book's two commands: `make book` (the site) and `make test` (everything CI checks).
# Each does its own set-up on a fresh machine: a local venv, dependencies, MathJax, Chromium.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
MATHJAX_VERSION := 3.2.2
MATHJAX := _mathjax/mathjax/tex-mml-chtml.js

# Data sets are read in place from ../shared/data when it exists; a value already set wins.
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(origin DDPM_NB_DATA),undefined)
ifneq ($(wildcard $(SHARED_DATA)),)
export DDPM_NB_DATA := $(SHARED_DATA)
endif
endif
# Two PyTorch threads fight anything else running on a 2-core machine unless they wait passively.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: help venv book test test-unit test-notebooks test-site chromium student clean

help:
	@echo "make book    build the site into _build/html (executes every notebook)"
	@echo "make test    unit tests, nbval over every notebook (its outputs feed the site build), the browser check"
	@echo "make student write the student edition into editions/student/ (what the site offers)"
	@echo "make venv    only create .venv with everything installed"

venv: $(VENV)/.installed

# Torch first, pinned to the CPU build on this machine's disk: an unpinned torch would pull CUDA.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

# MathJax 3 from the npm registry, served by the site itself so math renders with no network.
$(MATHJAX):
	@command -v npm >/dev/null || { echo "MathJax is fetched with npm, which is missing: install Node.js/npm."; exit 1; }
	rm -rf _mathjax.tmp && mkdir -p _mathjax.tmp
	cd _mathjax.tmp && npm pack --silent "mathjax@$(MATHJAX_VERSION)" >/dev/null
	tar -xzf _mathjax.tmp/mathjax-$(MATHJAX_VERSION).tgz -C _mathjax.tmp \
	    package/es5/tex-mml-chtml.js package/es5/output/chtml/fonts/woff-v2 package/LICENSE
	mkdir -p _mathjax && rm -rf _mathjax/mathjax
	mv _mathjax.tmp/package/es5 _mathjax/mathjax && mv _mathjax.tmp/package/LICENSE _mathjax/mathjax/
	rm -rf _mathjax.tmp

# Progress bars are for live readers: a static page would only show a frozen "0%" bar.
book: venv $(MATHJAX)
	TQDM_DISABLE=1 $(BIN)/jupyter-book build . -W -n --keep-going

test: export DDPM_NB_QUICK = 1
test: venv chromium
	$(MAKE) --no-print-directory test-unit
	$(MAKE) --no-print-directory test-notebooks
	mkdir -p _build && $(MAKE) --no-print-directory book 2>&1 | tee _build/book.log
	@! grep "Executing notebook" _build/book.log || { echo "The site build executed the notebooks above" \
	    "again: make test runs each notebook once, in nbval (see nbval-book above)."; exit 1; }
	$(MAKE) --no-print-directory test-site
	$(BIN)/python tools/claims.py _build/.jupyter_cache

test-unit: venv
	$(BIN)/ruff check ddpm_nb tests tools
	$(BIN)/python -m pytest -q -m "not site" tests

# nbval is the notebook test; what it executes (in the book's environment: no progress bars) is
# stored in the book's execution cache (tools/nbval_cache.py), so the site build does not rerun it.
test-notebooks: venv
	TQDM_DISABLE=1 $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env -p no:cacheprovider \
	    -p tools.nbval_cache --nbval-book=. notebooks

test-site: venv chromium
	$(BIN)/python -m pytest -q -m site tests

# The browser check needs Chromium: install Debian's when missing and we can, else say so.
chromium:
	@command -v chromium >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Chromium (Debian) for the browser check..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	    echo "make test needs Chromium for the real-browser check: install it (Debian: apt-get install chromium) and rerun."; \
	    exit 1; \
	fi

# The student edition the site offers (committed, so Colab can open it from the repository; a test
# checks that it is current). A teacher's own copy: ddpm-nb student notebooks/*.ipynb --out DIR.
student: venv
	$(BIN)/ddpm-nb student notebooks/*.ipynb --out editions/student/

clean:
	rm -rf _build student _mathjax
