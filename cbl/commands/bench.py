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

Measurement.  Each path runs in its own process, as a training run would (process-wide settings such as the
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
import multiprocessing as mp
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from cbl.cli import ArgumentParser, fail, invocation
from cbl.config import CONFIG_DIR

PROG = "cbl-bench"
#: the checkout this module runs from (in an installed wheel: site-packages, where no shared data lies beside it)
ROOT = Path(__file__).resolve().parents[2]
SHARED_NPZ = ROOT.parent / "shared" / "data" / "cifar10_jpeg_lossy.npz"
EPOCHS = 200
CHECK_EVERY = 20  # loss_check_every of the fast paths (and of the Table 2 sweep files)
TABLE2_SWEEPS = ("table2_softmax_sigmoid", "table2_focal")


@dataclass(frozen=True)
class Path_:
    """One way of running the same training: Hydra overrides of configs/train.yaml plus process settings."""

    name: str
    what: str
    overrides: tuple[str, ...]
    tuned_allocator: bool = False  # cbl.training.perf.tune_host_allocator(), which cbl.train applies on the CPU
    fp32: bool = True
    bank: int = 1  # networks trained together in one CifarResNetBank (hydra/launcher=bank); images/s summed


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


# ----------------------------------------------------------------------------- one path, in its own process
def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


class StepWindow:
    """The next `steps` batches of a loader, going on across calls and epochs (set_epoch at each new pass)."""

    def __init__(self, loader) -> None:
        self.loader, self.epoch, self.steps, self._it = loader, 0, 0, None

    def take(self, steps: int) -> "StepWindow":
        self.steps = steps
        return self

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            batch = next(self._it, None) if self._it is not None else None
            if batch is None:
                self.epoch += 1
                self.loader.set_epoch(self.epoch)
                self._it = iter(self.loader)
                batch = next(self._it)
            yield batch


class Runner:
    """Builds one path's training exactly as cbl.train does and times train / eval windows of it."""

    def __init__(self, path: Path_, common: list[str], threads: int | None) -> None:
        import torch
        from omegaconf import OmegaConf

        from cbl.data import build_data
        from cbl.training.distributed import DistEnv, resolve_device
        from cbl.training.perf import compile_options, tune_host_allocator
        from cbl.training.reproducibility import seed_everything
        from cbl.training.run import build_on, build_schedule

        self.torch = torch
        if path.tuned_allocator:
            tune_host_allocator()
        if threads:
            torch.set_num_threads(threads)
        cfg = compose([*common, *path.overrides])
        seed_everything(int(cfg.seed), bool(cfg.deterministic))
        self.device = device = resolve_device(str(cfg.device))
        self.check_every = int(cfg.loss_check_every)
        # the loaders as cbl.training.run.build_run_data makes them, without its CPU allocator tuning (a path's choice)
        data_cfg = {**OmegaConf.to_container(cfg.dataset, resolve=True), "channels_last": bool(cfg.channels_last)}
        self.data = data = build_data(data_cfg, seed=int(cfg.seed), device=device, batch_size=int(cfg.optim.batch_size),
                                      eval_batch_size=int(cfg.eval_batch_size))
        env = DistEnv(rank=0, world_size=1, local_rank=0, device=device)
        self.bank = path.bank
        if self.bank > 1:  # as cbl.training.bank.train_bank builds it (the members' losses are alike here: same cost)
            from cbl.training.bank import bank_optimizer
            from cbl.models.bank import CifarResNetBank

            members = [build_on(cfg, env, data) for _ in range(self.bank)]
            model = CifarResNetBank([m.model for m in members]).to(device)
            if cfg.channels_last:
                model = model.to(memory_format=torch.channels_last)
            self.optimizer = bank_optimizer(model, members)
            self.scheduler = build_schedule(cfg, self.optimizer, data)
            self.alive = torch.ones(self.bank, dtype=torch.bool, device=device)
            single = members[0]
        else:
            single = build_on(cfg, env, data)
            model, self.optimizer, self.scheduler = single.model, single.optimizer, single.scheduler
        self.criterion, self.amp_dtype = single.criterion, single.amp_dtype
        options = compile_options(cfg.compile)
        self.compiled = options is not None
        self.model = torch.compile(model, **options) if self.compiled else model
        self.train_window, self.test_window = StepWindow(data.train), StepWindow(data.test)
        self.batch_size, self.eval_batch_size = int(cfg.optim.batch_size), int(cfg.eval_batch_size)
        self.train_images = data.train.num_samples

    def info(self) -> dict[str, Any]:
        torch = self.torch
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
        else:
            name = cpu_name()
        return {"device": self.device.type, "device_name": name, "threads": torch.get_num_threads(),
                "torch": torch.__version__, "train_images": self.train_images, "compiled": self.compiled,
                "eval_batch_size": self.eval_batch_size,
                "last_batch": self.train_images % self.batch_size}

    def _train_steps(self, batches, check_every: int) -> None:
        from cbl.training.bank import train_bank_epoch
        from cbl.training.engine import train_one_epoch

        if self.bank > 1:
            train_bank_epoch(self.model, batches, [self.criterion] * self.bank, self.optimizer, self.scheduler, self.alive,
                             epoch=1, device=self.device, amp_dtype=self.amp_dtype, check_every=check_every)  # fmt: skip
        else:
            train_one_epoch(self.model, batches, self.criterion, self.optimizer, self.scheduler, epoch=1,
                            device=self.device, amp_dtype=self.amp_dtype, check_every=check_every, progress=False)  # fmt: skip

    def train(self, steps: int) -> float:
        start = time.perf_counter()
        self._train_steps(self.train_window.take(steps), self.check_every)
        return time.perf_counter() - start  # both epoch loops read the mean loss back: the device's queue is done

    def evaluate(self, batches: int) -> float:
        from cbl.training.bank import evaluate_bank
        from cbl.training.engine import evaluate

        start = time.perf_counter()
        if self.bank > 1:
            evaluate_bank(self.model, self.test_window.take(batches), self.data.num_classes, self.bank, device=self.device,
                          amp_dtype=self.amp_dtype)  # fmt: skip
        else:
            evaluate(self.model, self.test_window.take(batches), self.data.num_classes, device=self.device,
                     amp_dtype=self.amp_dtype)  # fmt: skip
        return time.perf_counter() - start

    def warmup(self, steps: int, eval_batches: int) -> float:
        start = time.perf_counter()
        # evaluation first: starting the eval loader's workers (fork) makes the next writes to the process's
        # memory copy-on-write faults, a one-off cost (once per run in training) that the warm-up steps absorb
        self.evaluate(max(1, min(eval_batches, 2)))
        last = self.train_images % self.batch_size
        if self.compiled and last:  # compile the epoch's last, partial batch shape too, outside the timing
            x, y = next(iter(self.train_window.take(1)))
            self._train_steps([(x[:last], y[:last])], check_every=1)
        self.train(steps)
        return time.perf_counter() - start


def _serve(conn, path: Path_, common: list[str], threads: int | None, start_method: str) -> None:
    """Child process: build the path, then answer ("train", n) / ("eval", n) / ("warmup", (n, m)) / ("stop", _)."""
    import logging

    # a spawned process defaults to spawning its own children: give DataLoader workers the start method a
    # training run gets (fork on Linux up to Python 3.13)
    mp.set_start_method(start_method, force=True)

    quiet = logging.getLogger("cbl.data")  # its one-line dataset summary, once per path, would bury the table
    quiet.addHandler(logging.NullHandler())
    quiet.setLevel(logging.INFO)
    quiet.propagate = False
    try:
        runner = Runner(path, common, threads)
        conn.send(("ready", runner.info()))
        while True:
            cmd, arg = conn.recv()
            if cmd == "stop":
                break
            if cmd == "warmup":
                conn.send(("ok", runner.warmup(*arg)))
            elif cmd == "train":
                conn.send(("ok", runner.train(arg)))
            elif cmd == "eval":
                conn.send(("ok", runner.evaluate(arg)))
    except BaseException:
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:
            pass
    finally:
        conn.close()


class Child:
    def __init__(self, ctx, path: Path_, common: list[str], threads: int | None) -> None:
        self.path = path
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child_conn, path, common, threads, mp.get_start_method()), daemon=False)
        self.proc.start()
        child_conn.close()

    def send(self, cmd: str, arg: Any = None) -> None:
        self.conn.send((cmd, arg))

    def receive(self) -> Any:
        try:
            status, value = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"path {self.path.name}: its process died (exit code {self.proc.join(5) or self.proc.exitcode})") from None
        if status == "error":
            raise RuntimeError(f"path {self.path.name} failed:\n{value}")
        return value

    def call(self, cmd: str, arg: Any = None) -> Any:
        self.send(cmd, arg)
        return self.receive()

    def stop(self) -> None:
        try:
            self.conn.send(("stop", None))
        except OSError:
            pass
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


# ----------------------------------------------------------------------------- machine information
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} CPUs)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} CPUs)"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class CpuMeter:
    """CPU time (Linux /proc) used by the whole machine and by this process tree, to tell others' load apart."""

    def __init__(self) -> None:
        self.ok = Path("/proc/stat").exists()
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.other = self.wall = 0.0

    def _read(self) -> tuple[float, float]:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))  # all but idle and iowait
        parent: dict[int, int] = {}
        ticks: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            rest = stat.rsplit(")", 1)[1].split()
            pid = int(entry.name)
            parent[pid], ticks[pid] = int(rest[1]), int(rest[11]) + int(rest[12])
        me, ours = os.getpid(), 0
        for pid in ticks:
            p, depth = pid, 0
            while p and p != me and depth < 64:
                p, depth = parent.get(p, 0), depth + 1
            if p == me:
                ours += ticks[pid]
        return busy / self.hz, ours / self.hz

    def __enter__(self) -> "CpuMeter":
        if self.ok:
            self._start, self._t = self._read(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.ok:
            (busy0, ours0), (busy1, ours1) = self._start, self._read()
            self.other += max(0.0, (busy1 - busy0) - (ours1 - ours0))
            self.wall += time.perf_counter() - self._t

    def other_share(self) -> float | None:
        """Fraction of the machine's CPU capacity other programs used while we measured."""
        if not self.ok or self.wall <= 0:
            return None
        return self.other / (self.wall * (os.cpu_count() or 1))


# ----------------------------------------------------------------------------- the benchmark
@dataclass
class Result:
    path: str
    what: str
    overrides: list[str]
    fp32: bool
    processes: int = 1
    members: int = 1  # networks per process (a bank): train_ips counts each network's images
    train_ips: float = 0.0
    eval_ips: float = 0.0
    train_ips_rounds: list[float] = field(default_factory=list)
    round_other_load: list[float | None] = field(default_factory=list)
    rounds: int = 0
    rounds_clean: int = 0  # rounds in which other programs stayed under --max-other-load: only these count (all, if none)
    warmup_s: float = 0.0
    compiled: bool = False
    compile_s: float = 0.0
    ratio: float | None = None
    one_run_h: float = 0.0
    grid_h: float = 0.0


def synthetic_npz(folder: str) -> str:
    import numpy as np

    rng = np.random.default_rng(0)
    path = os.path.join(folder, "synthetic_cifar10.npz")
    np.savez(path, x_train=rng.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8), y_train=np.arange(50_000) % 10,
             x_test=rng.integers(0, 256, (10_000, 32, 32, 3), dtype=np.uint8), y_test=np.arange(10_000) % 10)
    return path


def _timed(group: list[Child], cmd: str, arg: Any) -> float:
    """Wall time of one command sent to every process of a group at once (they run side by side)."""
    start = time.perf_counter()
    for c in group:
        c.send(cmd, arg)
    for c in group:
        c.receive()
    return time.perf_counter() - start


def measure(args, paths: list[Path_], npz: str) -> tuple[list[Result], dict[str, Any], float | None]:
    """Build every path in its own process, warm each up, then time them in alternating rounds."""
    ctx = mp.get_context("spawn")
    common = [f"dataset.npz={npz}", "dataset.name=cifar10_lt", "dataset.imbalance_factor=100", f"optim.batch_size={args.batch_size}",
              "loss=softmax", "loss.beta=0.9999", f"device={args.device}", "progress=false"]
    specs = [(p, 1, args.threads) for p in paths]
    if args.concurrent > 1:
        specs.append((paths[-1], args.concurrent, max(1, (args.threads or os.cpu_count() or 1) // args.concurrent)))
    groups: list[list[Child]] = []
    results: list[Result] = []
    overall = CpuMeter()
    per_round = max(1, args.steps // args.rounds)
    rounds: list[list[dict[str, float | None]]] = [[] for _ in specs]
    try:
        for p, k, threads in specs:
            groups.append([Child(ctx, p, common, threads) for _ in range(k)])
        infos = [[c.receive() for c in g] for g in groups]  # each process reports once it has built its path
        for (p, k, _), g, inf in zip(specs, groups, infos):
            results.append(Result(p.name if k == 1 else f"{p.name} x{k}",
                                  p.what if k == 1 else f"{k} processes of {p.name} at once, images/s summed",
                                  list(p.overrides), p.fp32, processes=k, members=p.bank))
            results[-1].warmup_s = _timed(g, "warmup", (args.warmup, args.eval_batches))
            results[-1].compiled = inf[0]["compiled"]
        for r in range(args.rounds):
            for i, g in enumerate(groups):
                meter = CpuMeter()
                with overall, meter:
                    train_s = _timed(g, "train", per_round)
                    eval_s = _timed(g, "eval", args.eval_batches)
                rounds[i].append({"train_s": train_s, "eval_s": eval_s, "other_load": meter.other_share()})
                other = meter.other_share()
                print(f"  round {r + 1}/{args.rounds} {results[i].path}: "
                      f"{len(g) * results[i].members * per_round * args.batch_size / train_s:,.0f} images/s"
                      + ("" if other is None else f" (others used {100 * other:.0f}% of the CPU)"), file=sys.stderr, flush=True)
    finally:
        for g in groups:
            for c in g:
                c.stop()
    eval_batch = infos[0][0]["eval_batch_size"]
    for res, rs, g in zip(results, rounds, groups):
        k = len(g) * res.members  # networks trained at once: each step trains batch_size images on each
        clean = [x for x in rs if x["other_load"] is None or x["other_load"] <= args.max_other_load]
        res.rounds_clean, res.rounds = len(clean), len(rs)
        used = clean or rs
        res.train_ips = k * per_round * args.batch_size * len(used) / sum(x["train_s"] for x in used)
        res.train_ips_rounds = [k * per_round * args.batch_size / x["train_s"] for x in rs]
        res.round_other_load = [x["other_load"] for x in rs]
        eval_s = sum(x["eval_s"] for x in used)
        res.eval_ips = k * args.eval_batches * eval_batch * len(used) / eval_s
        if res.compiled:  # the one-off compile time: warm-up time beyond what its steps take at full speed
            steady = k * args.warmup * args.batch_size / res.train_ips
            res.compile_s = max(0.0, res.warmup_s - steady)
    return results, infos[0][0], overall.other_share()


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
    lines += [
        "",
        f"_{report['device_name']}, {report['threads']} threads, torch {report['torch']}; {report['date']}, commit "
        f"`{report['commit']}`; data: {report['data']}; batch {report['batch_size']}, {report['steps']} timed steps per path "
        f"in {report['rounds']} alternating rounds after {report['warmup']} warm-up steps; only rounds in which other programs "
        f"used at most {100 * report['max_other_load']:.0f}% of the CPU count (others' use: {load}). "
        f"Grid: {report['grid']['runs']} runs, {report['grid']['train_images'] / 1e9:.2f} G training images "
        f"({EPOCHS} epochs), one after another. Command: `{report['command']}`._",
    ]
    return "\n".join(lines)


def ratio_line(results: list[Result]) -> str:
    """The fastest float32 project path against standard, and against the fastest standard variant measured."""
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
