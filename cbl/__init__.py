"""cbl: Class-Balanced Loss Based on Effective Number of Samples (Cui et al., CVPR 2019).

The loss library is `cbl.losses`; the training entrypoint is `python -m cbl.train`.  The package by role:

    losses/      the class-balanced losses (w_i = (1 - beta) / (1 - beta**n_i)) and those compared beyond the paper
    data/        long-tailed datasets and loaders
    models/      ResNet-32 (CIFAR), ResNet-50/101/152 (large scale), their heads, the demo CNN, the model bank
    training/    what a run does: recipe, optimiser, epochs, checkpoints, run files, tracking, DDP
    reporting/   run folders -> the paper's tables and figures, dashboards
    commands/    the console scripts (cbl-make-table, cbl-plot, cbl-bench, ...)
    train.py, evaluate.py, config.py, metrics.py, cli.py: the two entrypoints, config checks and run names, the
    metrics, the commands' shared helpers
"""

__version__ = "0.1.0"
