"""Reporting: what turns run folders into the results people read.

    runs.py          read run folders (metrics.json / metrics.jsonl), select them (--recipe, --where)
    tables.py        the paper's Tables 2 and 3, the methods and precision tables, with the paper's numbers beside
    paper.py         the paper's published numbers (paper_tables.md) and the recipe behind each table
    figures.py       the paper's Figures 3-5, error per epoch and per-class accuracy comparisons
    readme.py        rewrite a generated section of README.md / docs between marker comments
    eval_report.py   the files `cbl-evaluate` writes (confusion matrix, per-class accuracy plot)
    dashboard.py     a saved W&B workspace comparing the losses (`make dashboard`)
    table_run.py     a generated table logged to wandb
    wandb_offline.py a reader for offline wandb run files
"""
