"""Hydra launcher plugin `hydra/launcher=bank` (configs/hydra/launcher/bank.yaml): see bank_launcher.py."""
