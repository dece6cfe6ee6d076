# cbl: every command a user needs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# pytest workers: 2 keeps the 2-core CI busy without oversubscribing torch threads
PYTEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install test test-all demo bench precision-check compare-methods compare-methods-demo reproduce-cifar reproduce-inat reproduce-imagenet tables figures sweep-status clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv (when missing) and install cbl into it with the dev extras

test: $(STAMP) ## run the fast test suite (installs into .venv first)
	$(PY) -m pytest -q -m "not slow" -n $(PYTEST_WORKERS)

test-all: $(STAMP) ## run every test, the slow and data-dependent ones too
	$(PY) -m pytest -q -n $(PYTEST_WORKERS)

# Extra Hydra overrides for the sweeps, e.g. ARGS="hydra/launcher=joblib hydra.launcher.n_jobs=4 seed=0,1,2"
# or ARGS="hydra/launcher=slurm hydra.launcher.partition=gpu" (README "Scaling out")
ARGS ?=

demo: $(STAMP) ## offline demo: softmax vs class-balanced focal on long-tailed digits (CPU, < 1 min)
	rm -rf outputs/demo
	$(PY) -m cbl.train sweep=demo $(ARGS)
	$(PY) scripts/make_table.py --runs outputs/demo --table methods

compare-methods: $(STAMP) ## beyond the paper: CB loss vs 9 other long-tail methods (CIFAR-10-LT IF 100 unless ARGS says), table into README.md
	status=0; \
	$(PY) -m cbl.train sweep=methods resume=true $(ARGS) || status=1; \
	$(PY) scripts/sweep_summary.py outputs/methods || status=1; \
	$(PY) scripts/make_table.py --runs outputs/methods --table methods --readme README.md --marker methods; \
	exit $$status

compare-methods-demo: $(STAMP) ## the same comparison on the offline digits demo (CPU, about a minute; README untouched)
	rm -rf outputs/methods_demo
	$(PY) -m cbl.train sweep=methods_demo $(ARGS)
	$(PY) scripts/make_table.py --runs outputs/methods_demo --table methods

# scripts/bench.py options, e.g. BENCH_ARGS="--device cuda --concurrent 4 --json bench-gpu.json --readme README.md"
BENCH_ARGS ?=

bench: $(STAMP) ## images/s of ResNet-32: the standard PyTorch recipe vs this project's path, and the Table 2 projection
	$(PY) scripts/bench.py $(BENCH_ARGS)

precision-check: $(STAMP) ## bf16 autocast vs float32: 8 runs paired by seed (CIFAR-10-LT IF 100), table into README.md
	status=0; \
	$(PY) -m cbl.train sweep=precision resume=true $(ARGS) || status=1; \
	$(PY) scripts/make_table.py --runs outputs/precision --table precision --readme README.md || status=1; \
	exit $$status

reproduce-cifar: $(STAMP) ## Table 2: the 300-run ResNet-32 grid (resumable), then its table into README.md
	status=0; \
	$(PY) -m cbl.train sweep=table2_softmax_sigmoid resume=true $(ARGS) || status=1; \
	$(PY) -m cbl.train sweep=table2_focal resume=true $(ARGS) || status=1; \
	$(PY) scripts/sweep_summary.py outputs/table2 || status=1; \
	$(PY) scripts/make_table.py --runs outputs/table2 --table 2 --all-rows --readme README.md; \
	exit $$status

reproduce-inat: $(STAMP) ## Table 3, iNaturalist 2017/2018 columns (18 x 90-epoch runs; use torchrun / SLURM, see README)
	status=0; \
	$(PY) -m cbl.train sweep=table3_softmax dataset=inat2017,inat2018 resume=true $(ARGS) || status=1; \
	$(PY) -m cbl.train sweep=table3_cb_focal dataset=inat2017,inat2018 resume=true $(ARGS) || status=1; \
	$(PY) scripts/make_table.py --runs outputs/table3 --table 3 --all-rows --readme README.md; \
	exit $$status

reproduce-imagenet: $(STAMP) ## Table 3, ILSVRC 2012 column (9 x 90-epoch runs)
	status=0; \
	$(PY) -m cbl.train sweep=table3_softmax dataset=ilsvrc2012 resume=true $(ARGS) || status=1; \
	$(PY) -m cbl.train sweep=table3_cb_focal dataset=ilsvrc2012 resume=true $(ARGS) || status=1; \
	$(PY) scripts/make_table.py --runs outputs/table3 --table 3 --all-rows --readme README.md; \
	exit $$status

tables: $(STAMP) ## regenerate the README tables from the runs under outputs/
	$(PY) scripts/make_table.py --runs outputs/table2 --table 2 --all-rows --readme README.md
	$(PY) scripts/make_table.py --runs outputs/table3 --table 3 --all-rows --readme README.md

figures: $(STAMP) ## Figures 3, 4, 5 of the paper as PNGs under outputs/figures
	$(PY) scripts/plot.py --out outputs/figures --runs outputs

sweep-status: $(STAMP) ## finished / failed / incomplete runs of a sweep (RUNS=outputs/table2)
	$(PY) scripts/sweep_summary.py $(or $(RUNS),outputs/table2)

clean: ## remove caches (keeps .venv, data/ and outputs/)
	rm -rf .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
