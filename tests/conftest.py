"""Shared test setup: one torch thread per pytest worker (the CI machine has 2 cores and runs 2 workers)."""

import os

import torch

torch.set_num_threads(int(os.environ.get("CBL_TEST_THREADS", "1")))
