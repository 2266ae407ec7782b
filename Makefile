# tlbench -- `make help` lists every target.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
SLURM_DIR ?= /tmp/tlbench-slurm

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

install: ## create .venv and install tlbench editable with dev extras (torch from this machine's disk)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'

test: ## fast test suite (no `slow` tests; < 10 min on 2 CPU cores)
	$(BIN)/pytest -q

test-full: ## every test, including `slow` ones (every torchvision model, ...)
	$(BIN)/pytest -q -m ''

run: ## one run with the default config; pass overrides as ARGS='model=resnet18 strategy=scratch'
	$(BIN)/python -m tlbench $(ARGS)

sweep: ## transfer vs finetune vs scratch on the default data/model; extra overrides in ARGS
	$(BIN)/python -m tlbench --multirun strategy=transfer,finetune,scratch $(ARGS)

slurm-up: ## start a throwaway single-node SLURM under SLURM_DIR (default /tmp/tlbench-slurm; root, slurm-wlm + munge)
	scripts/slurm-up.sh $(SLURM_DIR)

slurm-down: ## stop the cluster `make slurm-up` started (its daemons only, by pid file)
	scripts/slurm-down.sh $(SLURM_DIR)

gpu-wheels: ## wheels the GPU machine lacks (hydra-core, omegaconf, antlr4) into wheels/ for bench/gpu_acceptance.py
	PYTHON=$(BIN)/python bench/gpu_wheels.sh wheels

tensorboard: ## open TensorBoard over every run and sweep in outputs/
	$(BIN)/tensorboard --logdir outputs --bind_all

lint: ## ruff check + format check
	$(BIN)/ruff check tlbench tests bench
	$(BIN)/ruff format --check tlbench tests bench

format: ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix tlbench tests bench
	$(BIN)/ruff format tlbench tests bench

clean: ## remove caches and run outputs (keeps .venv)
	rm -rf outputs/runs outputs/multiruns .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

.PHONY: help install test test-full run sweep slurm-up slurm-down gpu-wheels tensorboard lint format clean
