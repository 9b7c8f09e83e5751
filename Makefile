# Set-up, data, training and tests. Usage: `make train` or `make test`; see README.md.
#
# Variables (override on the command line, e.g. `make test PYTHON=python3.11 VENV=.venv311`):
#   PYTHON     interpreter for the virtualenv. Default: Python 3.7 when one actually runs (the
#              TensorFlow 1.15 stack), otherwise python3 (the TensorFlow 2.x stack).
#   VENV       virtualenv folder (default .venv).
#   MNIST_DIR  folder with the four MNIST .gz files for `make data` (else mnist_data/, downloaded).
#   ARGS       extra arguments for the script of train, demo, embeddings, evaluate, charts.

SHELL := /bin/bash

ifeq ($(origin PYTHON),undefined)
# The first Python 3.7 that runs (a pyenv shim may exist and still fail), else python3.
PYTHON := $(or $(shell for p in python3.7 $$(pyenv root 2>/dev/null)/versions/3.7.*/bin/python3.7; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 7))' >/dev/null 2>&1 \
	&& { echo "$$p"; break; }; done),python3)
endif

VENV ?= .venv
ARGS ?=
DATA_DIR := multi_mnist_data

ifdef MNIST_DIR
export MNIST_DIR
endif

# The venv is tied to the interpreter (version and installation) and to requirements.txt: the stamp
# name holds a hash of both, so a change of either re-runs the set-up.
ID_CODE := import sys; print(sys.version.split()[0] + "@" + sys.base_prefix)
PY_ID := $(shell $(PYTHON) -c '$(ID_CODE)' 2>/dev/null)
SETUP_KEY := $(shell { echo '$(PY_ID)'; cat requirements.txt; } | sha256sum | cut -c1-16)
STAMP := $(VENV)/.setup-$(SETUP_KEY)
PIP := $(VENV)/bin/python -m pip --disable-pip-version-check

.PHONY: setup data train test bench demo embeddings evaluate charts tensorboard clean-venv

setup: $(STAMP)

$(STAMP):
	@if [ -z "$(PY_ID)" ]; then echo "error: '$(PYTHON)' does not run; set PYTHON=/path/to/python" >&2; exit 2; fi
	@if [ -x "$(VENV)/bin/python" ] && [ "$$($(VENV)/bin/python -c '$(ID_CODE)' 2>/dev/null)" = "$(PY_ID)" ]; then \
		echo "setup: updating $(VENV) (requirements.txt changed)"; \
	else \
		echo "setup: creating $(VENV) for $(PYTHON) ($(PY_ID))"; \
		rm -rf "$(VENV)" && $(PYTHON) -m venv "$(VENV)"; \
	fi
	@$(PIP) install -qq -r requirements.txt
	@rm -f $(VENV)/.setup-*
	@touch $@
	@echo "setup: $(VENV) ready"

data: $(STAMP)
	@if [ -f $(DATA_DIR)/train.tfrecords ] && [ -f $(DATA_DIR)/test.tfrecords ]; then \
		echo "data: $(DATA_DIR)/ exists (delete it to regenerate)"; \
	else \
		$(VENV)/bin/python multi_mnist.py --output-dir $(DATA_DIR); \
	fi

train: $(STAMP) data
	$(VENV)/bin/python training.py $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -rs --durations=25 tests

bench: $(STAMP)
	$(VENV)/bin/python bench.py $(ARGS)

demo: $(STAMP)
	$(VENV)/bin/python demo.py $(ARGS)

embeddings: $(STAMP) data
	$(VENV)/bin/python embeddings.py $(ARGS)

evaluate: $(STAMP) data
	$(VENV)/bin/python evaluate.py $(ARGS)

charts: $(STAMP)
	$(VENV)/bin/python charts.py --results-dir air_results $(ARGS)

tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir air_results/summary

clean-venv:
	rm -rf "$(VENV)"
