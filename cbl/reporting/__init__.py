"""Reporting: what turns run folders into the results people read.

    runs.py          read run folders (metrics.json / metrics.jsonl), select them (--recipe, --where)
    tables.py        one call per results table (make_table), beside the paper's numbers; the tables themselves:
      table2.py, table3.py   the paper's Tables 2 and 3
      methods_table.py       any runs by configuration, with many / medium / few-shot accuracy and calibration
      precision_table.py     bf16 autocast against float32, paired by seed
      comparisons.py         class-balanced gain with bootstrap intervals; the CB best chosen on held-out halves
      status.py, attribution.py, multilabel_table.py   what is reproduced; the gap to the paper; multi-label mAP
      table_parts.py         formatting, Markdown rows, notes and the runs a table counts, shared by all of them
    paper.py         the paper's published numbers (paper_tables.md) and the recipe behind each table
    figures.py       the paper's Figures 3-5, error per epoch and per-class accuracy comparisons
    comparison_figures.py  reliability diagrams and the class-balanced gain against the imbalance factor
    readme.py        rewrite a generated section of README.md / docs between marker comments
    eval_report.py   the files `cbl-evaluate` writes (confusion matrix, per-class accuracy plot)
    dashboard.py     a saved W&B workspace comparing the losses (`make dashboard`)
    table_run.py     a generated table logged to wandb
    wandb_offline.py a reader for offline wandb run files
"""
