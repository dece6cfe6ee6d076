"""Training throughput of ResNet-32 on long-tailed CIFAR-10: the standard PyTorch recipe vs this project's path.

    cbl-bench [--device auto|cpu|cuda] [--steps 60] [--warmup 10] [--rounds 3] [--eval-batches 10]
              [--paths standard,tensor+cl+alloc,tensor+cl+alloc+bank4,...] [--batch-size 128] [--npz PATH | --npz synthetic]
              [--threads N] [--concurrent K] [--json out.json] [--readme docs/performance.md]
    python scripts/bench.py ...   # the same, from a checkout (`make bench`)

Every path trains the same thing with the project's own components, composed from configs/ exactly as
`python -m cbl.train` does (cbl.data.build_data, cbl.models, cbl.losses.criterion -- the class-balanced softmax loss,
beta 0.9999 --, cbl.training.optim SGD + the warm-up schedule, cbl.training.engine.train_one_epoch / evaluate), float32 unless
the path says bf16.  What changes between paths is only how: the loader, the memory format, torch.compile,
how often the loss is read back, the host allocator (see PATHS; `--paths list` prints them).

Measurement (cbl/commands/bench_processes.py).  Each path runs in its own process, as a training run would (process-wide settings such as the
allocator, thread pools and compile caches stay apart).  After `--warmup` steps (and, for compiled paths, one
step at the epoch's last partial batch size and an eval pass, so that no compilation is timed), the processes
take turns: in each of `--rounds` rounds every path trains steps/rounds steps and evaluates `--eval-batches`
test batches, one path at a time, so that a change in the machine's load touches every path alike.
images/s = images / wall time summed over the rounds (the loss read back at the end of each round, so
queued GPU work is counted).  The bench also reports how much CPU other programs took meanwhile
(Linux): figures taken on a busy machine are flagged.

Projection.  One run = 200 epochs of CIFAR-10-LT IF 100 (training images from cbl.data.long_tail_counts) plus
an evaluation of the 10,000 test images after every epoch (eval_every=1, which the "best error" column needs),
at the measured rates, plus the path's one-off compile time.  The Table 2 grid = every (dataset, imbalance
factor) of configs/sweep/table2_*.yaml times the runs each sweep file makes of it (300 runs), run one after
another at that rate (CIFAR-100's larger classifier is ignored: 64x100 weights).  `--concurrent K` adds a row
with K processes of the last path training at once on the device (each with threads/K CPU threads): their
summed throughput is what a sweep with `hydra/launcher=joblib hydra.launcher.n_jobs=K` gets.  A path named
`<path>+bank<K>` trains K networks side by side in one `CifarResNetBank` (cbl/models/bank.py; cbl/training/bank.py trains it), what a sweep with
`hydra/launcher=bank` does with the runs of one Table 2 cell: its images/s count each network's images.

Data: `--npz` (default: the shared lossy CIFAR-10 copy when it exists) or `--npz synthetic`, random uint8
images of CIFAR-10's shape (50,000 + 10,000, 10 classes) written to a temporary file; the output says which.
`--readme` rewrites the text between <!-- cbl:bench-cpu:start --> and <!-- cbl:bench-cpu:end --> (bench-gpu on
a GPU; --marker NAME for another) with the table; `--from-json` re-renders a saved report without measuring.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import asdict
from itertools import product
from pathlib import Path
from typing import Any

from cbl.cli import ArgumentParser, fail, invocation
from cbl.commands.bench_processes import Path_, Result, measure
from cbl.training.config import CONFIG_DIR

PROG = "cbl-bench"
#: the checkout this module runs from (in an installed wheel: site-packages, where no shared data lies beside it)
ROOT = Path(__file__).resolve().parents[2]
SHARED_NPZ = ROOT.parent / "shared" / "data" / "cifar10_jpeg_lossy.npz"
EPOCHS = 200
CHECK_EVERY = 20  # loss_check_every of the fast paths (and of the Table 2 sweep files)
TABLE2_SWEEPS = ("table2_softmax_sigmoid", "table2_focal")


def _workers() -> int:
    return min(4, os.cpu_count() or 1)


def make_paths() -> dict[str, Path_]:
    std = ("dataset.loader=torch", "channels_last=false", "compile=false", "loss_check_every=1")
    fast = ("dataset.loader=tensor", f"loss_check_every={CHECK_EVERY}")
    cl = (*fast, "channels_last=true")
    paths = [
        Path_("standard", f"DataLoader ({_workers()} workers) + per-image torchvision transforms, NCHW, eager, loss read every step",
              (*std, f"dataset.num_workers={_workers()}")),
        Path_("standard-w0", "as standard, transforms in the main process (num_workers=0)", (*std, "dataset.num_workers=0")),
        Path_("tensor", f"on-device TensorLoader (batched crop/flip), loss read every {CHECK_EVERY} steps", fast),
        Path_("tensor+cl", "+ channels_last model and batches", cl),
        Path_("tensor+cl+alloc", "+ host allocator tuning (what cbl.train does on the CPU)", cl, tuned_allocator=True),
        Path_("tensor+cl+alloc+compile", "+ torch.compile (inductor)", (*cl, "compile=true"), tuned_allocator=True),
        Path_("tensor+cl+compile", "+ torch.compile (inductor)", (*cl, "compile=true")),
        Path_("tensor+cl+cudagraphs", "+ torch.compile mode=reduce-overhead (CUDA graphs)", (*cl, "compile=reduce-overhead")),
        Path_("tensor+cl+cudagraphs+bf16", "+ bf16 autocast (NOT float32: a different computation)",
              (*cl, "compile=reduce-overhead", "precision=bf16"), fp32=False),
        Path_("tensor+cl+alloc+bf16", "+ bf16 autocast (NOT float32: a different computation)",
              (*cl, "precision=bf16"), tuned_allocator=True, fp32=False),
    ]
    return {p.name: p for p in paths}


PATHS = make_paths()
BANK_SUFFIX = re.compile(r"^(?P<base>.+)\+bank(?P<k>\d+)$")


def resolve_path(name: str) -> Path_ | None:
    """A path by name; "<path>+bank<K>" is that path with K networks in one bank (cbl/models/bank.py)."""
    if name in PATHS:
        return PATHS[name]
    m = BANK_SUFFIX.match(name)
    if m is None or m["base"] not in PATHS or int(m["k"]) < 2:
        return None
    base, k = PATHS[m["base"]], int(m["k"])
    what = f"as {base.name}, with {k} networks in one bank (hydra/launcher=bank), images/s summed over them"
    return Path_(name, what, base.overrides, base.tuned_allocator, base.fp32, k)

DEFAULT_PATHS = {
    "cpu": ("standard", "standard-w0", "tensor", "tensor+cl", "tensor+cl+alloc", "tensor+cl+alloc+compile",
            "tensor+cl+alloc+bank4"),
    "cuda": ("standard", "tensor", "tensor+cl", "tensor+cl+compile", "tensor+cl+cudagraphs", "tensor+cl+cudagraphs+bf16",
             "tensor+cl+cudagraphs+bank10", "tensor+cl+cudagraphs+bank15"),
}


# ----------------------------------------------------------------------------- the Table 2 grid
def sweep_params(name: str) -> dict[str, list[str]]:
    from omegaconf import OmegaConf

    node = OmegaConf.load(CONFIG_DIR / "sweep" / f"{name}.yaml")
    params = OmegaConf.to_container(node.hydra.sweeper.params)
    return {k: [v.strip() for v in str(values).split(",")] for k, values in params.items()}


def grid_runs() -> list[dict[str, Any]]:
    """[{dataset, imbalance_factor, runs, train_images}] over the Table 2 sweep files (one seed)."""
    from omegaconf import OmegaConf

    from cbl.data import long_tail_counts
    from cbl.data.cifar import CIFAR_SPECS

    cells: dict[tuple[str, float], int] = {}
    for sweep in TABLE2_SWEEPS:
        params = sweep_params(sweep)
        datasets, factors = params.pop("dataset"), params.pop("dataset.imbalance_factor")
        per_cell = 1
        for values in params.values():
            per_cell *= len(values)
        for ds, imb in product(datasets, factors):
            cells[(ds, float(imb))] = cells.get((ds, float(imb)), 0) + per_cell
    out = []
    for (ds, imb), runs in cells.items():
        ds_cfg = OmegaConf.load(CONFIG_DIR / "dataset" / f"{ds}.yaml")
        n = sum(long_tail_counts(int(ds_cfg.n_max), CIFAR_SPECS[ds.removesuffix("_lt")]["num_classes"], imb))
        out.append({"dataset": ds, "imbalance_factor": imb, "runs": runs, "train_images": n, "test_images": 10_000})
    return out


def projections(train_ips: float, eval_ips: float, fixed_s: float, grid: list[dict[str, Any]]) -> dict[str, float]:
    """Hours for one CIFAR-10-LT IF-100 run and for the whole grid at these rates (see the module docstring)."""
    from cbl.data import long_tail_counts

    def run_s(n_train: int, n_test: int) -> float:
        return EPOCHS * (n_train / train_ips + n_test / eval_ips) + fixed_s

    one = run_s(sum(long_tail_counts(5000, 10, 100)), 10_000)
    total = sum(c["runs"] * run_s(c["train_images"], c["test_images"]) for c in grid)
    return {"one_run_h": one / 3600, "grid_h": total / 3600}


# ----------------------------------------------------------------------------- the report
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def synthetic_npz(folder: str) -> str:
    import numpy as np

    rng = np.random.default_rng(0)
    path = os.path.join(folder, "synthetic_cifar10.npz")
    np.savez(path, x_train=rng.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8), y_train=np.arange(50_000) % 10,
             x_test=rng.integers(0, 256, (10_000, 32, 32, 3), dtype=np.uint8), y_test=np.arange(10_000) % 10)
    return path


def finish(results: list[Result], grid: list[dict[str, Any]]) -> None:
    base = next((r.train_ips for r in results if r.path == "standard"), None)
    for r in results:
        r.ratio = r.train_ips / base if base else None
        # one run's rate: each of the processes x members networks trained side by side gets its share
        at_once = r.processes * r.members
        one = projections(r.train_ips / at_once, r.eval_ips / at_once, r.compile_s, grid)
        total = projections(r.train_ips, r.eval_ips, r.compile_s / r.processes, grid)
        r.one_run_h, r.grid_h = one["one_run_h"], total["grid_h"]


def table(report: dict[str, Any]) -> str:
    """The results as a Markdown table plus a line naming the machine, date, commit and data."""
    lines = [
        "| path | train images/s | vs standard | eval images/s | one 200-epoch run (h) | Table 2 grid (h) | quiet rounds | what |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] else "-"
        quiet = f"{r['rounds_clean']}/{r['rounds']}" if r["rounds_clean"] else f"0/{r['rounds']} (all used)"
        lines.append(f"| `{r['path']}` | {r['train_ips']:,.0f} | {ratio} | {r['eval_ips']:,.0f} | {r['one_run_h']:.2f} | "
                     f"{r['grid_h']:,.1f} | {quiet} | {r['what']} |")
    other = report["other_load"]
    load = "not measured" if other is None else f"{100 * other:.0f}% over all rounds"
    cpu = ""
    if report.get("cpu_capability"):  # measured on a CPU (reports from before this was recorded lack it)
        bf16 = {True: "yes", False: "no", None: "unknown"}[report.get("onednn_bf16")]
        cpu = f" ({report['cpu_capability']}; oneDNN bf16 kernels: {bf16})"
    lines += [
        "",
        f"_{report['device_name']}{cpu}, {report['threads']} threads, torch {report['torch']}; {report['date']}, commit "
        f"`{report['commit']}`; data: {report['data']}; batch {report['batch_size']}, {report['steps']} timed steps per path "
        f"in {report['rounds']} alternating rounds after {report['warmup']} warm-up steps; only rounds in which other programs "
        f"used at most {100 * report['max_other_load']:.0f}% of the CPU count (others' use: {load}). "
        f"Grid: {report['grid']['runs']} runs, {report['grid']['train_images'] / 1e9:.2f} G training images "
        f"({EPOCHS} epochs), one after another. Command: `{report['command']}`._",
    ]
    return "\n".join(lines)


def ratio_line(results: list[Result]) -> str:
    """The fastest float32 project path against standard, and against the fastest standard variant measured; then
    each bf16 path against its float32 twin (the same path without +bf16), when both were measured."""
    return "\n".join([float32_ratio_line(results), *bf16_ratio_lines(results)])


def float32_ratio_line(results: list[Result]) -> str:
    ours = [r for r in results if r.fp32 and r.processes == 1 and r.members == 1 and not r.path.startswith("standard")]
    standard = [r for r in results if r.path.startswith("standard")]
    base = next((r for r in standard if r.path == "standard"), None)
    if not ours or base is None:
        return "ratio: needs the standard path and a project path (--paths standard,...)"
    best, best_std = max(ours, key=lambda r: r.train_ips), max(standard, key=lambda r: r.train_ips)
    line = (f"ratio: {best.path} trains {best.train_ips / base.train_ips:.2f}x as many images/s as standard "
            f"({best.train_ips:,.0f} vs {base.train_ips:,.0f}), float32 both")
    if best_std is not base:
        line += (f"; {best.train_ips / best_std.train_ips:.2f}x the fastest standard variant, {best_std.path} "
                 f"({best_std.train_ips:,.0f})")
    banks = [r for r in results if r.fp32 and r.members > 1]
    if banks:
        b = max(banks, key=lambda r: r.train_ips)
        line += (f"\nbank: {b.path} trains {b.train_ips / base.train_ips:.2f}x as many images/s as standard and "
                 f"{b.train_ips / best.train_ips:.2f}x {best.path} ({b.members} configurations at once, float32)")
    return line


def bf16_ratio_lines(results: list[Result]) -> list[str]:
    """bf16's speed-up (or slow-down: a CPU without oneDNN's bf16 kernels) over the same path in float32."""
    by_name = {r.path: r for r in results}
    out = []
    for r in results:
        twin = by_name.get(r.path.replace("+bf16", "")) if not r.fp32 else None
        if twin is not None and twin is not r:
            out.append(f"bf16: {r.path} trains {r.train_ips / twin.train_ips:.2f}x as many images/s as {twin.path} "
                       f"in float32 ({r.train_ips:,.0f} vs {twin.train_ips:,.0f})")
    return out


def parse(argv: list[str], prog: str = PROG) -> argparse.Namespace:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:<index>")
    p.add_argument("--steps", type=int, default=60, help="timed training steps per path (split over the rounds)")
    p.add_argument("--warmup", type=int, default=10, help="untimed training steps per path first")
    p.add_argument("--rounds", type=int, default=3, help="turns the paths take (alternating)")
    p.add_argument("--eval-batches", type=int, default=10, help="test batches (of 100) timed per path and round")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--paths", help="comma-separated paths ('list' prints them); default: per device")
    p.add_argument("--npz", help=f"a CIFAR-10 .npz, or 'synthetic' (default: {SHARED_NPZ} when it exists)")
    p.add_argument("--threads", type=int, help="torch CPU threads per path process (default: torch's own)")
    p.add_argument("--concurrent", type=int, default=1, help="also time K processes of the last path at once")
    p.add_argument("--max-other-load", type=float, default=0.10,
                   help="leave out rounds in which other programs used more than this share of the CPU (Linux; default 0.10)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--readme", help="replace a marked section of this Markdown file with the table (see --marker)")
    p.add_argument("--marker", help="section name: <!-- cbl:NAME:start/end --> (default bench-cpu or bench-gpu)")
    p.add_argument("--from-json", help="measure nothing: print (and --readme) the table of a saved --json report")
    args = p.parse_args(argv)
    args.prog = prog  # for the messages of write_readme
    if args.paths == "list":
        for path in PATHS.values():
            print(f"{path.name:28s} {path.what}\n{'':28s} overrides: {' '.join(path.overrides)}"
                  + ("; host allocator tuned" if path.tuned_allocator else ""))
        raise SystemExit(0)
    for key in ("steps", "warmup", "rounds", "batch_size", "concurrent"):
        if getattr(args, key) < (0 if key == "warmup" else 1):
            p.error(f"--{key.replace('_', '-')} must be >= {0 if key == 'warmup' else 1}")
    if args.eval_batches < 1 or (args.threads is not None and args.threads < 1):
        p.error("--eval-batches and --threads must be >= 1")
    if args.steps < args.rounds:
        p.error(f"--steps ({args.steps}) must be at least --rounds ({args.rounds})")
    return args


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv, prog)
    if args.from_json:
        try:
            report = json.loads(Path(args.from_json).read_text())
        except (OSError, ValueError) as e:
            fail(prog, f"cannot read --from-json {args.from_json}: {e}")
        print(table(report))
        print("\n" + ratio_line([Result(**r) for r in report["results"]]))  # the ratios, as the measuring run printed them
        write_readme(args, report)
        return 0
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        fail(prog, f"--device {args.device}, but CUDA is not available here; use --device cpu")
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    names = args.paths.split(",") if args.paths else list(DEFAULT_PATHS[kind])
    unknown = [n for n in names if resolve_path(n) is None]
    if unknown:
        fail(prog, f"unknown path(s) {unknown}; choose from {', '.join(PATHS)}, each optionally +bank<K> (K >= 2)")
    paths = [resolve_path(n) for n in names]
    grid = grid_runs()
    with tempfile.TemporaryDirectory(prefix="cbl-bench-") as tmp:
        if args.npz == "synthetic" or (args.npz is None and not SHARED_NPZ.exists()):
            npz, data = synthetic_npz(tmp), "synthetic uint8 images of CIFAR-10's shape (random; throughput only)"
            if args.npz is None:  # said loudly: a user who expected real images must not miss it
                print(f"{prog}: warning: no CIFAR-10 .npz at {SHARED_NPZ}: measuring SYNTHETIC random images "
                      f"(throughput only); pass --npz <file>.npz for real ones", file=sys.stderr, flush=True)
        else:
            npz = str(args.npz or SHARED_NPZ)
            if not Path(npz).exists():
                fail(prog, f"--npz {npz}: no such file")
            data = f"{Path(npz).name} (real images)"
        print(f"{prog}: {len(paths)} paths on {args.device}, data: {data}", file=sys.stderr, flush=True)
        results, info, other = measure(args, paths, npz)
    finish(results, grid)
    report = {
        **info, "date": datetime.date.today().isoformat(), "commit": git_commit(), "data": data,
        "batch_size": args.batch_size, "steps": (args.steps // args.rounds) * args.rounds, "warmup": args.warmup,
        "rounds": args.rounds, "eval_batches": args.eval_batches, "other_load": other, "max_other_load": args.max_other_load,
        "command": shlex.join([*invocation(prog), *argv]),
        "grid": {"runs": sum(c["runs"] for c in grid), "train_images": EPOCHS * sum(c["runs"] * c["train_images"] for c in grid),
                 "cells": grid},
        "results": [asdict(r) for r in results],
    }
    print(table(report))
    print("\n" + ratio_line(results))
    noisy = [r.path for r in results if r.rounds_clean == 0]
    if noisy:
        print(f"warning: other programs used more than {100 * args.max_other_load:.0f}% of the CPU in every round of "
              f"{', '.join(noisy)}; those figures are unreliable (run again on a quiet machine)", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    write_readme(args, report)
    return 0


def write_readme(args, report: dict[str, Any]) -> None:
    if not args.readme:
        return
    from cbl.reporting.readme import MarkerError, update_file

    name = args.marker or ("bench-gpu" if report["device"] == "cuda" else "bench-cpu")
    try:
        update_file(args.readme, name, table(report))
    except MarkerError as e:
        fail(args.prog, str(e))


if __name__ == "__main__":
    raise SystemExit(main())
