"""cbl: Class-Balanced Loss Based on Effective Number of Samples (Cui et al., CVPR 2019).

The loss library is `cbl.losses`; the training entrypoint is `python -m cbl.train`.
"""

__version__ = "0.1.0"
