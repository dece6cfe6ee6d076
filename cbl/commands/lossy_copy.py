"""Measure the JPEG settings of a CIFAR copy, and write a JPEG-lossy copy of the official CIFAR (cbl/data/lossy_copy.py).

    cbl-lossy-copy measure --npz ../shared/data/cifar10_jpeg_lossy.npz     # the re-encoding error per setting
    cbl-lossy-copy make --out data/cifar10_jpeg_q75.npz [--root data] [--download]   # quality 75, 4:2:0

`measure` re-encodes a class-stratified sample of the training images (--per-class, seeded) at every JPEG quality
(--qualities) and chroma subsampling, prints the mean squared pixel difference of each, and names the minimum: the
settings the copy was made with (a baseline JPEG re-encoded with its own settings barely changes).  `--json` also
writes the grid.  `make` reads the official CIFAR-10 / CIFAR-100 python archive under --root (downloading it with
--download) and writes an .npz for `dataset.npz=...` with every image through one JPEG round trip; its bytes, and so
its sha256, depend on the JPEG library, so it is a comparable copy, not necessarily a given one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cbl.cli import ArgumentParser, fail

PROG = "cbl-lossy-copy"


def measure(args) -> int:
    from cbl.data.cifar import read_cifar_npz
    from cbl.data.lossy_copy import reencoding_errors, sample_images

    try:
        x_train, y_train, *_ = read_cifar_npz(args.npz, args.classes)
    except (FileNotFoundError, ValueError) as e:
        fail(args.prog, str(e).splitlines()[0])
    images = sample_images(x_train, y_train, args.per_class, args.seed)
    errors = reencoding_errors(images, args.qualities)
    (q, s), best = min(errors.items(), key=lambda kv: kv[1])
    result = {"npz": Path(args.npz).name, "images": len(images), "per_class": args.per_class, "seed": args.seed,
              "errors": [{"quality": k[0], "subsampling": k[1], "mse": v} for k, v in errors.items()],
              "minimum": {"quality": q, "subsampling": s, "mse": best}}
    text = render_measurement(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.readme:
        from cbl.reporting.readme import MarkerError, update_file

        try:
            update_file(args.readme, args.marker, text)
        except MarkerError as e:
            fail(args.prog, str(e))
    print(text)
    return 0


def render_measurement(result: dict) -> str:
    """The re-encoding error grid as Markdown, with its minimum (a measurement's JSON, as `measure` writes it)."""
    errors = {(e["quality"], e["subsampling"]): e["mse"] for e in result["errors"]}
    qualities = list(dict.fromkeys(q for q, _ in errors))
    subsamplings = list(dict.fromkeys(s for _, s in errors))
    best = result["minimum"]
    lines = [f"Mean squared pixel difference (0-255 scale) between {result['images']} training images of "
             f"`{result['npz']}` ({result['per_class']} per class, seed {result['seed']}) and their re-encoding with "
             "Pillow's JPEG encoder at each quality and chroma subsampling:", "",
             "| quality | " + " | ".join(subsamplings) + " |", "| --- | " + " | ".join("---" for _ in subsamplings) + " |"]
    for q in qualities:
        lines.append(f"| {q} | " + " | ".join(
            (f"**{errors[q, s]:.2f}**" if (q, s) == (best["quality"], best["subsampling"]) else f"{errors[q, s]:.2f}")
            for s in subsamplings) + " |")
    lines += ["", f"Minimum: quality {best['quality']} with {best['subsampling']} chroma subsampling "
                  f"({best['mse']:.2f}). At high qualities re-encoding changes any image little, so what identifies "
                  "the settings is the dip against the neighbouring qualities and subsamplings, not the lowest value "
                  "alone."]
    return "\n".join(lines)


def make(args) -> int:
    from cbl.data.cifar import read_cifar_folder
    from cbl.data.lossy_copy import write_lossy_copy

    name = f"cifar{args.classes}"
    try:
        x_train, y_train, x_test, y_test, names = read_cifar_folder(name, args.root, download=args.download)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_lossy_copy(out, x_train, y_train, x_test, y_test, names, args.quality, args.subsampling)
    except (FileNotFoundError, ValueError) as e:
        fail(args.prog, str(e).splitlines()[0])
    print(f"wrote {out}: {len(x_train)} training and {len(x_test)} test images of {name}, each through JPEG quality "
          f"{args.quality} with {args.subsampling} chroma subsampling; train with dataset.npz={out}")
    return 0


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    from cbl.data.lossy_copy import QUALITIES, SUBSAMPLING

    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="the re-encoding error of a copy at each JPEG quality and chroma subsampling")
    m.add_argument("--npz", required=True, help="a CIFAR .npz (x_train, y_train, x_test, y_test)")
    m.add_argument("--classes", type=int, choices=[10, 100], default=10, help="10 (CIFAR-10, default) or 100")
    m.add_argument("--per-class", type=int, default=50, help="training images per class measured (default 50)")
    m.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    m.add_argument("--qualities", type=int, nargs="+", default=list(QUALITIES), help="qualities tried (default: %(default)s)")
    m.add_argument("--json", help="also write the grid to this JSON file")
    m.add_argument("--readme", help="also replace the marked section of this Markdown file with the grid")
    m.add_argument("--marker", default="jpeg-quality", help="section name in the --readme markers (default jpeg-quality)")
    w = sub.add_parser("make", help="write a JPEG-lossy copy of the official CIFAR as an .npz for dataset.npz=...")
    w.add_argument("--out", required=True, help="the .npz to write")
    w.add_argument("--root", default="data", help="folder holding cifar-10-batches-py/ (default data)")
    w.add_argument("--classes", type=int, choices=[10, 100], default=10, help="10 (CIFAR-10, default) or 100")
    w.add_argument("--download", action="store_true", help="download the official archive when absent")
    w.add_argument("--quality", type=int, default=75, help="JPEG quality (default 75)")
    w.add_argument("--subsampling", choices=list(SUBSAMPLING), default="4:2:0", help="chroma subsampling (default 4:2:0)")
    args = p.parse_args(argv)
    args.prog = prog
    if args.command == "measure" and (args.per_class < 1 or any(not 1 <= q <= 95 for q in args.qualities)):
        p.error(f"--per-class must be >= 1 and --qualities in 1..95; got {args.per_class} and {args.qualities}")
    if args.command == "make" and not 1 <= args.quality <= 95:
        p.error(f"--quality must be in 1..95; got {args.quality}")
    return measure(args) if args.command == "measure" else make(args)


if __name__ == "__main__":
    sys.exit(main())
