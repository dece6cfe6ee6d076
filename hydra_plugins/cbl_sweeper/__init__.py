"""Hydra sweeper plugin `hydra/sweeper=cbl` (configs/hydra/sweeper/cbl.yaml), the default of cbl.train: see cbl_sweeper.py."""
