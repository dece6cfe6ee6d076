# cbl: every command a user needs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# the exact versions behind the README's numbers (pyproject.toml keeps ranges; docs/install.md)
LOCK   ?= requirements.lock
# pytest workers: 2 keeps the 2-core CI busy without oversubscribing torch threads; --dist worksteal lets an idle
# worker take queued tests from a busy one, so that a long end-to-end test does not leave the other core idle at the end
PYTEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install lock test test-all demo demo-multilabel bench precision-check evidence-lossy evidence-queue evidence-tables device-kit check-data compare-methods compare-methods-demo reproduce-cifar reproduce-inat reproduce-imagenet tables figures sweep-status dashboard clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv (when missing) and install cbl into it with the dev extras, at the versions of requirements.lock

lock: $(STAMP) ## rewrite requirements.lock from .venv (pip freeze: every installed package, pinned), keeping its header
	{ grep '^#' $(LOCK); $(PY) -m pip freeze --exclude-editable; } > $(LOCK).new && mv $(LOCK).new $(LOCK)

test: $(STAMP) ## run the fast test suite (installs into .venv first)
	$(PY) -m pytest -q -m "not slow" -n $(PYTEST_WORKERS) --dist worksteal --durations=15

test-all: $(STAMP) ## run every test, the slow and data-dependent ones too
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal

# Extra Hydra overrides for the sweeps, e.g. ARGS="hydra/launcher=joblib hydra.launcher.n_jobs=4 seed=0,1,2"
# or ARGS="hydra/launcher=slurm hydra.launcher.partition=gpu" (docs/scaling_out.md)
ARGS ?=

demo: $(STAMP) ## offline demo: softmax vs class-balanced focal on long-tailed digits (CPU; the table's footer says how long it trained)
	rm -rf outputs/demo
	$(PY) -m cbl.train sweep=demo $(ARGS)
	$(PY) scripts/make_table.py --runs outputs/demo --table methods

demo-multilabel: $(STAMP) ## offline multi-label demo: sigmoid / focal, plain and class-balanced (per image, per class), on long-tailed digits-MLT; mAP table (docs/multilabel.md)
	rm -rf outputs/demo_multilabel
	$(PY) -m cbl.train sweep=demo_multilabel $(ARGS)
	$(PY) -m cbl.train sweep=demo_multilabel loss.beta=0.999 loss.multilabel_weighting=class $(ARGS)
	$(PY) scripts/make_table.py --runs outputs/demo_multilabel --table multilabel

compare-methods: $(STAMP) ## beyond the paper: CB loss vs 9 other long-tail methods (CIFAR-10-LT IF 100 unless ARGS says), table into docs/beyond_the_paper.md
	status=0; \
	$(PY) -m cbl.train sweep=methods resume=true $(ARGS) || status=1; \
	$(PY) scripts/sweep_summary.py outputs/table2 outputs/methods outputs/runs --sweep "sweep=methods $(ARGS)" || status=1; \
	$(PY) scripts/make_table.py --runs outputs/table2 outputs/methods outputs/runs --table methods --sweep "sweep=methods $(ARGS)" \
	    --readme docs/beyond_the_paper.md --marker methods; \
	exit $$status

compare-methods-demo: $(STAMP) ## the same comparison on the offline digits demo (CPU; prints the table, writes no file)
	rm -rf outputs/methods_demo
	$(PY) -m cbl.train sweep=methods_demo $(ARGS)
	$(PY) scripts/make_table.py --runs outputs/methods_demo --table methods

# scripts/bench.py options, e.g. BENCH_ARGS="--device cuda --concurrent 4 --json bench-gpu.json --readme docs/performance.md"
BENCH_ARGS ?=

bench: $(STAMP) ## images/s of ResNet-32: the standard PyTorch recipe vs this project's path, and the Table 2 projection
	$(PY) scripts/bench.py $(BENCH_ARGS)

precision-check: $(STAMP) ## bf16 autocast vs float32: 8 runs paired by seed (CIFAR-10-LT IF 100), table into docs/performance.md
	status=0; \
	$(PY) -m cbl.train sweep=precision resume=true $(ARGS) || status=1; \
	$(PY) scripts/make_table.py --runs outputs/table2 --table precision --readme docs/performance.md || status=1; \
	exit $$status

# the JPEG-lossy CIFAR-10 copy (never the paper's data: its runs get tables of their own)
CBL_LOSSY_NPZ ?= ../shared/data/cifar10_jpeg_lossy.npz

evidence-lossy: $(STAMP) ## CIFAR-10-LT IF 100, full schedule, on the lossy CIFAR-10 copy (6 runs, hours on a CPU): summaries into benchmarks/, tables into README.md, figures into docs/figures/
	status=0; \
	CBL_LOSSY_NPZ=$(CBL_LOSSY_NPZ) $(PY) -m cbl.train sweep=evidence_lossy resume=true $(ARGS) || status=1; \
	CBL_LOSSY_NPZ=$(CBL_LOSSY_NPZ) $(PY) scripts/collect_runs.py --runs outputs/table2 --to benchmarks/evidence_lossy \
	    --sweep "sweep=evidence_lossy $(ARGS)" || status=1; \
	$(MAKE) --no-print-directory evidence-tables || status=1; \
	exit $$status

# the lossy-copy runs still to train, one configuration per line (a run that stops resumes; committed ones are skipped)
EVIDENCE_QUEUE ?= benchmarks/evidence_queue.txt

evidence-queue: $(STAMP) ## train EVIDENCE_QUEUE's configurations in order on the lossy copy (hours each on a CPU; resumable), each finished summary into benchmarks/evidence_lossy
	CBL_LOSSY_NPZ=$(CBL_LOSSY_NPZ) $(PY) scripts/run_queue.py $(EVIDENCE_QUEUE) --base "sweep=evidence_lossy $(ARGS)" \
	    --runs outputs/table2 --to benchmarks/evidence_lossy

evidence-tables: $(STAMP) ## regenerate the lossy-copy evidence (README status, tables, attribution; docs/evidence.md's gain table; figures) from benchmarks/
	$(PY) scripts/make_table.py --runs benchmarks/evidence_lossy benchmarks/precision_cpu --table status --readme README.md
	$(PY) scripts/make_table.py --runs benchmarks/evidence_lossy --table 2 --readme README.md --marker evidence-table2
	$(PY) scripts/make_table.py --runs benchmarks/evidence_lossy --table methods --readme README.md --marker evidence-shots
	$(PY) scripts/make_table.py --runs benchmarks/evidence_lossy benchmarks/precision_cpu --table attribution --readme README.md --marker evidence-attribution
	$(PY) scripts/make_table.py --runs benchmarks/evidence_lossy --table gain --readme docs/evidence.md --marker evidence-gain
	$(PY) scripts/make_table.py --runs benchmarks/evidence_lossy --table selection --where seed=1 --readme docs/evidence.md --marker evidence-selection
	$(PY) scripts/plot.py --out docs/figures/evidence_lossy --runs benchmarks/evidence_lossy --recipe all --where precision=bf16 --compare

reproduce-cifar: $(STAMP) ## Table 2: the 300-run ResNet-32 grid (resumable), then its table into README.md
	status=0; \
	$(PY) -m cbl.train sweep=table2_softmax_sigmoid resume=true $(ARGS) || status=1; \
	$(PY) -m cbl.train sweep=table2_focal resume=true $(ARGS) || status=1; \
	$(PY) scripts/sweep_summary.py outputs/table2 || status=1; \
	$(PY) scripts/make_table.py --runs outputs/table2 --table 2 --all-rows --recipe paper --readme README.md; \
	exit $$status

reproduce-inat: $(STAMP) ## Table 3, iNaturalist 2017/2018 columns (18 x 90-epoch runs; use torchrun / SLURM, see docs/scaling_out.md)
	status=0; \
	$(PY) -m cbl.train sweep=table3_softmax dataset=inat2017,inat2018 resume=true $(ARGS) || status=1; \
	$(PY) -m cbl.train sweep=table3_cb_focal dataset=inat2017,inat2018 resume=true $(ARGS) || status=1; \
	$(PY) scripts/make_table.py --runs outputs/table3 --table 3 --all-rows --recipe paper --readme README.md; \
	exit $$status

reproduce-imagenet: $(STAMP) ## Table 3, ILSVRC 2012 column (9 x 90-epoch runs)
	status=0; \
	$(PY) -m cbl.train sweep=table3_softmax dataset=ilsvrc2012 resume=true $(ARGS) || status=1; \
	$(PY) -m cbl.train sweep=table3_cb_focal dataset=ilsvrc2012 resume=true $(ARGS) || status=1; \
	$(PY) scripts/make_table.py --runs outputs/table3 --table 3 --all-rows --recipe paper --readme README.md; \
	exit $$status

device-kit: $(STAMP) ## build .device_kit/ (wheels + the packed IF 100 data, size-checked) for a lent GPU: docs/performance.md#the-device-kit
	CBL_LOSSY_NPZ=$(CBL_LOSSY_NPZ) $(PY) scripts/device_kit.py build

check-data: $(STAMP) ## decode every image of a dataset (ARGS="dataset=imagefolder dataset.root=..."), list the damaged ones
	$(PY) scripts/check_data.py $(ARGS)

tables: $(STAMP) ## regenerate README Tables 2 and 3 from the runs of the paper's recipe under outputs/table2, outputs/table3
	$(PY) scripts/make_table.py --runs outputs/table2 --table 2 --all-rows --recipe paper --readme README.md
	$(PY) scripts/make_table.py --runs outputs/table3 --table 3 --all-rows --recipe paper --readme README.md

figures: $(STAMP) ## Figures 3, 4, 5 of the paper as PNGs under outputs/figures, from the same runs as `make tables`
	$(PY) scripts/plot.py --out outputs/figures --runs outputs/table2 outputs/table3 --recipe paper

sweep-status: $(STAMP) ## finished / failed / incomplete runs of a sweep (RUNS=outputs/table2)
	$(PY) scripts/sweep_summary.py $(or $(RUNS),outputs/table2)

# scripts/dashboard.py options, e.g. DASHBOARD_ARGS="--entity me --sweep table2 --dataset cifar10_lt --if 100"
# or DASHBOARD_ARGS="--json outputs/dashboard.json --dry-run" (no network needed); docs/dashboards.md
DASHBOARD_ARGS ?=

dashboard: $(STAMP) ## save a W&B workspace comparing the losses of the wandb project's runs (DASHBOARD_ARGS)
	$(PY) scripts/dashboard.py $(DASHBOARD_ARGS)

clean: ## remove caches (keeps .venv, data/ and outputs/)
	rm -rf .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
