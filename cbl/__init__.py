"""cbl: Class-Balanced Loss Based on Effective Number of Samples (Cui et al., CVPR 2019).

The loss library is `cbl.losses`; the training entrypoint is `python -m cbl.train`.  The package by role:

    losses/      the class-balanced losses (w_i = (1 - beta) / (1 - beta**n_i)) and those compared beyond the paper
    data/        long-tailed datasets and loaders
    models/      ResNet-32 (CIFAR), ResNet-50/101/152 (large scale), their heads, the demo CNN, the model bank
    evaluation/  what an evaluation computes from logits: top-k error, shot accuracy, calibration (ECE, NLL)
    training/    what a run does: config checks and run names, recipe, optimiser, epochs, checkpoints, run files,
                 saved predictions, tracking, DDP
    reporting/   run folders -> the paper's tables and figures, dashboards
    commands/    the console scripts (cbl-make-table, cbl-plot, cbl-bench, ...)
    train.py, evaluate.py, cli.py: the two entrypoints, the commands' shared helpers

Imports run one way, down this list read from the bottom: commands and the entrypoints use reporting, reporting
uses training, training uses models, data, losses and evaluation (tests/test_layers.py checks it).
"""

__version__ = "0.1.0"
