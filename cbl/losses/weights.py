"""`cbl-weights` (also `python -m cbl.losses.weights`): the effective numbers and class-balanced weights of a set
of class counts over a grid of beta, printed as two tables.

    effective number (Cui et al., Sec. 3):   E_n = (1 - beta**n) / (1 - beta),  at most 1 / (1 - beta)
    class-balanced weight (Sec. 4):          w_i = 1 / E_{n_i}, normalised to sum to C

Because E_n saturates at 1 / (1 - beta), every class with n_i well above 1 / (1 - beta) gets nearly the same
weight: beta = 0.9 (cap 10) weights classes of 50 and of 5000 images alike, while beta = 0.9999 (cap 10000)
weights them almost by inverse frequency.  The last rows say so per beta: how many classes are at the cap (E_n
within 1% of it, i.e. beta**n <= 0.01) and the ratio of the largest weight to the smallest.

    cbl-weights --counts 5000 2997 1796 1077 645 387 232 139 83 50
    cbl-weights --dataset cifar100_lt --imbalance-factor 50 --beta 0.99 0.999
    cbl-weights --list data/coco_mlt_train.txt --beta 0.9 0.99
    cbl-weights --dataset inat2018 --root data/inat2018

`--dataset` cifar10_lt / cifar100_lt takes the long-tailed CIFAR profile of cbl.data.long_tail, n_i = int(n_max *
(1/IF)**(i/(C-1))); inat2017 / inat2018 / ilsvrc2012 count the train split under `--root` (default: the dataset
config's, $CBL_DATA_DIR or data, then the name) with the training loaders themselves, so the counts are the ones
a training run weights by: the train JSON's annotations per category (sorted-id order), or the images per class
folder of <root>/train.
`--list` counts an image list, single-label (`<path> <label>`, dataset=listfile) or multi-label (`<path>
<label>,<label>,...`, dataset=multilabel_listfile: n_i = the images with label i), over `--num-classes` classes
(default: the largest label + 1).  Both import cbl.data only then (cbl.losses itself needs torch alone).  Bad input: one line `cbl-weights: error: ...`, exit 2.
"""

from __future__ import annotations

import math
import os
import sys

from cbl.cli import ArgumentParser, fail
from cbl.losses.class_balanced import check_beta, class_balanced_weights, effective_number

PROG = "cbl-weights"
DEFAULT_BETAS = (0.0, 0.9, 0.99, 0.999, 0.9999)
#: --dataset: the long-tailed CIFARs (configs/dataset/), their classes and n_max from cbl.data.cifar.CIFAR_SPECS
DATASETS = ("cifar10_lt", "cifar100_lt")
#: --dataset with --root: the paper's large-scale sets (Table 3), counted from their train split on disk
LARGE_SCALE = ("inat2017", "inat2018", "ilsvrc2012")
#: a class is "at the cap" when E_n >= (1 - CAP_TOLERANCE) / (1 - beta), i.e. beta**n <= CAP_TOLERANCE
CAP_TOLERANCE = 0.01


def dataset_counts(name: str, imbalance_factor: float) -> list[int]:
    # lazily: the data package (torchvision, ...) is not a dependency of the losses
    from cbl.data.cifar import CIFAR_SPECS
    from cbl.data.long_tail import long_tail_counts

    spec = CIFAR_SPECS[name.removesuffix("_lt")]
    return long_tail_counts(spec["n_max"], spec["num_classes"], imbalance_factor)


def default_root(name: str) -> str:
    """The root folder of configs/dataset/<name>.yaml: ${CBL_DATA_DIR:-data}/<name>."""
    return os.path.join(os.environ.get("CBL_DATA_DIR", "data"), name)


def large_scale_counts(name: str, root: str) -> list[int]:
    """n_i of the train split of iNaturalist 2017/2018 or ILSVRC 2012 under `root`, read by the training loaders."""
    try:
        if name == "ilsvrc2012":
            from cbl.data.imagenet import ilsvrc2012

            return ilsvrc2012(root, "train").samples_per_class()
        from cbl.data.inaturalist import INaturalist

        return INaturalist(root, name, "train").samples_per_class()
    except FileNotFoundError as e:
        raise ValueError(str(e)) from None


def list_counts(path: str, num_classes: int | None) -> list[int]:
    """n_i of an image list: the lines whose labels include class i (one label per line in a single-label list)."""
    from cbl.data.multilabel import read_multilabel_list  # reads `<path> <label>` lines too: one label each

    try:
        listed = read_multilabel_list(path)
    except FileNotFoundError as e:
        raise ValueError(str(e)) from None
    largest = max((max(y) for y in listed.labels if y), default=-1)
    c = largest + 1 if num_classes is None else num_classes
    if c < 1 or largest >= c:
        raise ValueError(f"--num-classes {num_classes} is too small for {path}: it has label {largest}"
                         if largest >= c else f"{path}: no line has a label, so there are no classes to count")
    counts = [0] * c
    for labels in listed.labels:
        for label in labels:
            counts[label] += 1
    return counts


def _table(title: str, counts: list[int], betas: list[float], columns: list[list[str]],
           footer: list[tuple[str, list[str]]]) -> list[str]:
    """Rows `class  n  <one column per beta>`, then the footer rows (a label over the first two columns)."""
    heads = [f"beta={b:g}" for b in betas]
    widths = [max(len(h), *(len(v) for v in col), *(len(values[j]) for _, values in footer))
              for j, (h, col) in enumerate(zip(heads, columns))]
    n_width = max(len("n"), *(len(str(n)) for n in counts))
    first = max(len("class"), len(str(len(counts) - 1)), *(len(label) - 2 - n_width for label, _ in footer))

    def row(left: str, values: list[str]) -> str:
        return left.ljust(first + 2 + n_width) + "".join("  " + v.rjust(w) for v, w in zip(values, widths))

    lines = [title, row(f"{'class':<{first}}  {'n':>{n_width}}", heads)]
    lines += [row(f"{i:<{first}}  {n:>{n_width}}", [col[i] for col in columns]) for i, n in enumerate(counts)]
    return lines + [row(label, values) for label, values in footer]


def report(counts: list[int], betas: list[float], source: str) -> str:
    """The two tables for the class counts `counts`, one column per beta."""
    c = len(counts)
    effective = [effective_number(counts, b).tolist() for b in betas]
    weights = [class_balanced_weights(counts, b).tolist() for b in betas]
    caps = [1.0 / (1.0 - b) for b in betas]
    at_cap = [sum(1 for e in col if e >= (1.0 - CAP_TOLERANCE) * cap) for col, cap in zip(effective, caps)]
    lines = [
        f"{source}: {c} classes, {sum(counts)} samples, n from {max(counts)} to {min(counts)} "
        f"(n_max / n_min = {max(counts) / min(counts):.4g})",
        f"E_n = (1 - beta**n) / (1 - beta) is at most 1 / (1 - beta); w_i = 1 / E_{{n_i}}, normalised to sum to {c}.",
        "Classes whose E_n is at that cap get the same weight, however different their n.",
        "",
    ]
    lines += _table("effective number E_n", counts, betas, [[f"{e:.6g}" for e in col] for col in effective],
                    [("cap 1/(1-beta)", [f"{cap:.6g}" for cap in caps]),
                     (f"classes at the cap ({CAP_TOLERANCE:.0%})", [str(k) for k in at_cap])])
    lines.append("")
    lines += _table(f"class-balanced weight w_i (sum {c})", counts, betas, [[f"{w:.4f}" for w in col] for col in weights],
                    [("largest / smallest", [f"{max(col) / min(col):.4g}" for col in weights])])
    return "\n".join(lines)


def _check_imbalance_factor(value: float) -> float:
    if not math.isfinite(value) or value < 1.0:
        raise ValueError(f"--imbalance-factor must be a finite number >= 1; got {value:g}")
    return value


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--counts", nargs="+", type=int, metavar="N", help="training-set count of each class")
    source.add_argument("--dataset", choices=DATASETS + LARGE_SCALE,
                        help="the counts of a long-tailed CIFAR training set, or of a large-scale one's under --root")
    source.add_argument("--list", metavar="FILE", help="the counts of an image list: `<path> <label>` or "
                        "`<path> <label>,<label>,...` lines (the training list of dataset=listfile / multilabel_listfile)")
    p.add_argument("--num-classes", type=int, metavar="C", help="classes of --list (default: its largest label + 1)")
    p.add_argument("--imbalance-factor", type=float, metavar="IF",
                   help="n_max / n_min of a CIFAR --dataset (default 100; the paper: 200, 100, 50, 20, 10, 1)")
    p.add_argument("--root", metavar="DIR", help="the folder of a large-scale --dataset (default: $CBL_DATA_DIR or "
                   "data, then the dataset's name, as in configs/dataset/)")
    p.add_argument("--beta", nargs="+", type=float, default=list(DEFAULT_BETAS), metavar="BETA",
                   help="the betas, each in [0, 1) (default: %(default)s)")
    args = p.parse_args(argv)
    try:
        betas = [check_beta(b) for b in args.beta]
        if args.imbalance_factor is not None and args.dataset is None:
            raise ValueError("--imbalance-factor applies only with --dataset (--counts and --list give the counts)")
        if args.num_classes is not None and args.list is None:
            raise ValueError("--num-classes applies only with --list")
        large_scale = args.dataset in LARGE_SCALE
        if args.root is not None and not large_scale:
            raise ValueError(f"--root applies only with --dataset {' / '.join(LARGE_SCALE)} (the others are not read from disk)")
        if args.imbalance_factor is not None and large_scale:
            raise ValueError(f"--imbalance-factor applies only to the CIFAR datasets; {args.dataset} is counted as it is on disk")
        if args.counts is not None:
            counts, source = args.counts, "--counts"
        elif args.list is not None:
            counts, source = list_counts(args.list, args.num_classes), args.list
        elif large_scale:
            root = args.root if args.root is not None else default_root(args.dataset)
            counts, source = large_scale_counts(args.dataset, root), f"{args.dataset} train split under {root}"
        else:
            imbalance_factor = _check_imbalance_factor(100.0 if args.imbalance_factor is None else args.imbalance_factor)
            counts = dataset_counts(args.dataset, imbalance_factor)
            source = f"{args.dataset}, imbalance factor {imbalance_factor:g}"
        bad = [i for i, n in enumerate(counts) if n < 1]
        if bad:
            raise ValueError(f"every class needs a count >= 1 (a class without samples has no effective number); "
                             f"class {bad[0]} has {counts[bad[0]]} ({source})")
    except ValueError as e:
        fail(prog, str(e))
    print(report(counts, betas, source))
    return 0


if __name__ == "__main__":
    sys.exit(main())
