"""cbl.training: what `python -m cbl.train` (cbl/train.py) runs, from the recipe to the files a run leaves.

    config.py           config checks before any work starts; the Hydra resolvers
    overrides.py        what command-line overrides compose to: the runs of a sweep, one line for a typo
    run_identity.py     run folder names and groups; which config changes a checkpoint resumes with
    run.py              one run: build, resume, the epochs, the final metrics; every failure recorded
    refusal.py          a run refused before it started leaves nothing in the results tree
    failures.py         a failed run's or sweep job's one line on stderr, and its exit status
    multilabel.py       the multi-label side of a run: the mAP evaluation and what it records
    recipes.py          the paper's training recipes behind each table, and how a run's recipe differs from them
    optim.py            SGD and the authors' lr schedule (linear warm-up, then steps at the milestones)
    engine.py           one training epoch and one evaluation pass
    reproducibility.py  seeding and RNG state, so that a resumed run continues exactly
    checkpoint.py       atomic, verified checkpoints (crash-safe resume)
    run_files.py        the run folder: config.yaml, metrics.jsonl, metrics.json
    predictions.py      the saved test logits and labels (predictions_last.npz), in test-set order under DDP
    tracking.py         Weights & Biases logging that never stops training
    distributed.py      DistributedDataParallel setup (torchrun, submitit) and the device choice
    active_time.py      training time without the time the process was stopped (kill -STOP)
    perf.py             settings that change speed, never results (host allocator, torch.compile options)
    bank.py             K configurations of one Table 2 cell trained together on one device
    faults.py           fault injection for the crash-safety tests
"""
