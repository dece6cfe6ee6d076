"""The project's commands as importable modules: each is a console script (pyproject.toml [project.scripts]), a
`python -m cbl.commands.<name>` module, and a thin wrapper in scripts/ that the Makefile and README use.

    cbl-make-table      make_table.py     the paper's tables from run directories (cbl.reporting.tables)
    cbl-plot            plot.py           the paper's figures (cbl.reporting.figures)
    cbl-sweep-summary   sweep_summary.py  finished / failed / incomplete runs of a sweep
    cbl-collect-runs    collect_runs.py   finished runs' summaries into a folder to commit (never checkpoints)
    cbl-dashboard       dashboard.py      a W&B workspace comparing the losses (cbl.reporting.dashboard)
    cbl-bench           bench.py          training throughput, the standard recipe vs this project's path
    cbl-run-queue       run_queue.py      a file of configurations trained one after another, resumable
    cbl-lossy-copy      lossy_copy.py     measure a CIFAR copy's JPEG settings; write a JPEG-lossy copy
    cbl-check-data      check_data.py     decode every image of a dataset, list the damaged ones
                        device_kit.py     the kit for a lent GPU machine (scripts/device_kit.py; no console script)

`cbl-train` (cbl.train) and `cbl-evaluate` (cbl.evaluate) live beside the code they run.  Each `main(argv, prog)`
takes the program name for its messages: `cbl-make-table: error: ...` or, from the wrapper, `make_table.py: error: ...`.
"""
