"""The bench's measurement: each path built exactly as `python -m cbl.train` builds it and timed in a process of its
own (cbl/commands/bench.py defines the paths, projects the times and writes the table).

After the warm-up, the processes take turns: in each round every path trains steps/rounds steps and evaluates
eval_batches test batches, one path at a time, so that a change in the machine's load touches every path alike;
images/s = images / wall time summed over the rounds.  `CpuMeter` measures what other programs took meanwhile
(Linux /proc), so that rounds on a busy machine are left out.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbl.training.config import CONFIG_DIR
from cbl.training.perf import machine


@dataclass(frozen=True)
class Path_:
    """One way of running the same training: Hydra overrides of configs/train.yaml plus process settings."""

    name: str
    what: str
    overrides: tuple[str, ...]
    tuned_allocator: bool = False  # cbl.training.perf.tune_host_allocator(), which cbl.train applies on the CPU
    fp32: bool = True
    bank: int = 1  # networks trained together in one CifarResNetBank (hydra/launcher=bank); images/s summed


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
        m = machine(self.device)
        # on a CPU, its instruction level and oneDNN's bf16 kernels decide how fast a bf16 path can be
        cpu = {"cpu_capability": m["capability"], "onednn_bf16": m["onednn_bf16"]} if m["device"] == "cpu" else {}
        return {"device": m["device"], "device_name": m["name"], "threads": m["threads"], **cpu,
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
            evaluate_bank(self.model, self.test_window.take(batches), self.data.num_classes, [("softmax", 1.0)] * self.bank,
                          device=self.device, amp_dtype=self.amp_dtype)  # fmt: skip
        else:  # with the calibration training computes at every evaluation
            evaluate(self.model, self.test_window.take(batches), self.data.num_classes, device=self.device,
                     amp_dtype=self.amp_dtype, probability="softmax")  # fmt: skip
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


# ----------------------------------------------------------------------------- the rounds
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
