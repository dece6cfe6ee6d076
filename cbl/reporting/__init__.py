"""Reporting on top of wandb: the saved dashboard (dashboard.py), the tables as a wandb run (table_run.py) and a
reader for offline wandb runs (wandb_offline.py)."""
