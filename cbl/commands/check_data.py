"""Decode every image a run of a dataset would read, before a long job, and list the damaged ones.

    cbl-check-data dataset=imagefolder dataset.root=/data/mine      # the dataset as `cbl-train` composes it
    cbl-check-data dataset=inat2018 --workers 16 --out damaged.txt
    make check-data ARGS="dataset=ilsvrc2012"

The arguments are `cbl-train`'s overrides: the dataset is composed from configs/ exactly as training composes it,
so the images checked are the ones the run would read (the long-tailed subset of the training images and the
evaluation images).  Each is decoded in full (cbl/data/images.py) by `--workers` processes (default: the CPUs this
process may use) with a progress bar on stderr; every damaged image is printed as one line naming the file, its
class and the error, `--out` also writes them to a file, and a summary line ends the output.  Exit status: 0 when
every image decodes, 1 when some do not, 2 for bad input (an unknown dataset or key, missing data).  The array
datasets (CIFAR, digits) hold no image files: their arrays are read and checked instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cbl.cli import ArgumentParser, fail

PROG = "cbl-check-data"


class _Decoded:
    """Item i of a dataset as (i, None) when it decodes, (i, the one-line reason) when it does not."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        from cbl.data.images import DamagedImageError

        try:
            self.dataset[i]
            return i, None
        except DamagedImageError as e:
            return i, str(e)


def damaged_images(dataset, workers: int, desc: str) -> list[str]:
    """The one-line reason of every item of `dataset` that does not decode (DataLoader workers, a progress bar)."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    loader = DataLoader(_Decoded(dataset), batch_size=32, num_workers=workers, collate_fn=list)
    bad = []
    with tqdm(total=len(dataset), desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True) as bar:
        for batch in loader:
            bad += [reason for _, reason in batch if reason is not None]
            bar.update(len(batch))
    return bad


def compose_dataset(overrides: list[str]) -> dict:
    """The resolved `dataset` node `cbl-train <overrides>` would use."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from cbl.training.config import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return OmegaConf.to_container(cfg.dataset, resolve=True)


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", metavar="key=value", help="cbl-train overrides, e.g. dataset=imagefolder "
                                                                     "dataset.root=/data/mine")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: the CPUs available)")
    p.add_argument("--out", help="also write the damaged images' lines to this file")
    args = p.parse_args(argv)
    workers = available_cpus() if args.workers is None else args.workers
    if workers < 0:
        p.error(f"--workers must be >= 0; got {workers}")
    try:
        cfg = compose_dataset(args.overrides)
    except Exception as e:  # Hydra: an unknown group, key or value
        fail(prog, str(e).splitlines()[0])
    name = cfg.get("name")
    from cbl.data.build import ARRAY_DATASETS, _load_arrays, file_splits  # after composing: torch takes a moment
    from cbl.data.multilabel import MULTILABEL_DATASETS, multilabel_file_splits

    try:
        if name == "digits_mlt":
            print(f"{name}: built from scikit-learn's digits in memory; no image files to decode")
            return 0
        if name in MULTILABEL_DATASETS:
            splits = multilabel_file_splits(name, cfg)
            train, test, source, where = splits.train, splits.test, splits.source, splits.extra
        elif name in ARRAY_DATASETS:
            split, extra, _ = _load_arrays(name, cfg)
            print(f"{name}: {len(split.y_train)} training and {len(split.y_test)} test images read as arrays{extra}; "
                  "no image files to decode")
            return 0
        else:
            train, test, *_ , source, where = file_splits(name, cfg)
    except (ValueError, FileNotFoundError) as e:
        fail(prog, str(e).splitlines()[0])
    bad = damaged_images(train, workers, f"{name} train") + damaged_images(test, workers, f"{name} eval")
    for line in bad:
        print(line)
    if args.out:
        Path(args.out).write_text("".join(line + "\n" for line in bad), encoding="utf-8")
    total = len(train) + len(test)
    if bad:
        print(f"{prog}: {len(bad)} of {total} images of {name} are damaged{where}", file=sys.stderr)
        return 1
    print(f"{name}: all {total} images decode ({len(train)} training, {len(test)} evaluation{where}; data source "
          f"{source.id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
