"""The device kit: one prepared command that, on a lent GPU machine, runs the CUDA tests, the six CIFAR-10-LT IF 100
evidence runs in float32 at the paper's full schedule (one bank of six networks) and the GPU benchmark, and brings
their results back.  The machine there has its own torch but no Hydra, OmegaConf or wandb, reaches no registry, and
takes at most 64 MiB of working tree plus carried paths; this module imports nothing beyond the standard library
until the kit has put Hydra on the path.

    python scripts/device_kit.py build     # here (`make device-kit`): .device_kit/ = wheels + packed data, size checked
    python3 scripts/device_kit.py run      # there, from the checkout's root, carrying .device_kit; writes to $OUT
    python scripts/device_kit.py ingest D  # here, D = the folder the files came back to

build   downloads the wheels of hydra-core and omegaconf (pinned in requirements.lock) and builds antlr4's (it ships no
        wheel) for the machine there (CPython 3.12, x86-64); packs the IF 100 subset (subset seed 0) of the lossy copy and
        its test set losslessly (cbl/data/partial_copy.py, about 33 MiB); checks that the working tree and the kit fit
        in the limit with room to spare; prints the `run` tool call.
run     installs the wheels into a folder of its own, unpacks the data (every pixel checked), then, each step
        bounded in time so that the whole fits one 10-minute call: the CUDA tests (`pytest -m cuda`), the six runs
        (`sweep=evidence_lossy precision=fp32 hydra/launcher=bank`, resumable: a stopped bank continues from its
        checkpoints in a second call), the benchmark (`scripts/bench.py --device cuda`).  $OUT receives at most 8
        files: kit.json (each step's status and time), kit.log, runs.tar.gz (the finished runs' summaries and
        predictions), bench-gpu.json, and resume-NN.tar chunks holding stopped runs with their newest checkpoint.
ingest  copies the finished runs into benchmarks/evidence_gpu/ (cbl-collect-runs), the benchmark into
        benchmarks/gpu.json and its table into docs/performance.md, and joins the resume chunks into
        .device_kit/resume.tar for the next call.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KIT = ".device_kit"
LIMIT = 64 * 2**20  # what the device tool carries: working tree plus carried paths
HEADROOM = 4 * 2**20  # room left for the files a session adds before it calls
#: the packages the machine there lacks (KINDS.md lists what it has): pinned ones from requirements.lock
WHEELS = ("hydra-core", "omegaconf")
BUILT_WHEELS = ("antlr4-python3-runtime",)  # sdist only on PyPI: built here into a pure-Python wheel
PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
            "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64"]
DATA_PACK = "cifar10_lt_if100_s0.npz"
MAX_OUT_FILE = 15 * 2**20  # the tool returns files of at most 16 MiB each
SITE = Path(tempfile.gettempdir()) / "cbl-kit-site"


def _log(out: Path | None, text: str) -> None:
    print(text, flush=True)
    if out is not None:
        with open(out / "kit.log", "a", encoding="utf-8") as f:
            f.write(text + "\n")


# ----------------------------------------------------------------------------- build (here)
def locked_versions(lock: Path) -> dict[str, str]:
    out = {}
    for line in lock.read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            out[name.lower()] = version
    return out


def tree_bytes(root: Path) -> int:
    """Bytes of what the device tool sends: tracked files and untracked files git does not ignore."""
    names = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=root, capture_output=True,
                           check=True).stdout.decode().split("\0")
    return sum((root / n).stat().st_size for n in names if n and (root / n).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def fetch_wheels(dest: Path, lock: Path) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    pins = locked_versions(lock)
    from importlib.metadata import version

    specs = [f"{name}=={pins[name]}" for name in WHEELS]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", *PLATFORM,
                    "-d", str(dest), *specs], check=True)
    built = [f"{name}=={version(name)}" for name in BUILT_WHEELS]  # the version this environment runs
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dest), *built], check=True)
    return sorted(p.name for p in dest.glob("*.whl"))


def build(args) -> int:
    kit = Path(args.kit)
    if kit.exists():
        shutil.rmtree(kit)
    (kit / "data").mkdir(parents=True)
    wheels = fetch_wheels(kit / "wheels", ROOT / "requirements.lock") if not args.no_wheels else []
    sys.path.insert(0, str(ROOT))
    from cbl.data.partial_copy import pack

    packed = pack(args.npz, kit / "data" / DATA_PACK, imbalance_factor=100, subset_seed=0, n_max=args.n_max)
    manifest = {"wheels": wheels, "data": packed.name, "npz": str(args.npz), "n_max": args.n_max,
                "kit_bytes": folder_bytes(kit), "tree_bytes": tree_bytes(ROOT)}
    (kit / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = manifest["kit_bytes"] + manifest["tree_bytes"]
    print(f"{kit}: {len(wheels)} wheels, {packed.name}; kit {manifest['kit_bytes'] / 2**20:.1f} MiB + working tree "
          f"{manifest['tree_bytes'] / 2**20:.1f} MiB = {total / 2**20:.1f} MiB of the {LIMIT / 2**20:.0f} MiB the device "
          "tool carries")
    if total > LIMIT - HEADROOM:
        print(f"device_kit: error: {total / 2**20:.1f} MiB leaves less than {HEADROOM / 2**20:.0f} MiB of the "
              f"{LIMIT / 2**20:.0f} MiB limit", file=sys.stderr)
        return 2
    print(f"\nOn the device (the run tool): command `python3 scripts/device_kit.py run`, carry [\"{KIT}\"], "
          "timeout_s 600; then `python scripts/device_kit.py ingest <files_at>` here.")
    return 0


# ----------------------------------------------------------------------------- run (there)
def ensure_packages(kit: Path, out: Path) -> dict[str, str]:
    """The environment for the steps: Hydra importable (the kit's wheels installed when it is not) and this checkout
    first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               PYTHONUNBUFFERED="1", MPLBACKEND="Agg", WANDB_MODE="disabled")
    probe = subprocess.run([sys.executable, "-c", "import hydra, omegaconf"], env=env, capture_output=True)
    if probe.returncode != 0:
        wheels = sorted(str(p) for p in (kit / "wheels").glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"hydra is not importable and {kit / 'wheels'} holds no wheels: run `make device-kit` here")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--target", str(SITE), *wheels], check=True)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(SITE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        _log(out, f"installed {len(wheels)} wheels into {SITE}")
    return env


def step(out: Path, report: dict, name: str, command: list[str], env: dict, timeout: float) -> int | None:
    """Run one step in its own process group, at most `timeout` seconds (then SIGTERM, which a run takes as a
    preemption: it keeps its checkpoint); its output goes to kit.log.  Returns the exit status (None: timed out)."""
    start = time.perf_counter()
    _log(out, f"\n=== {name}: {' '.join(command)} (at most {timeout:.0f} s)")
    with open(out / "kit.log", "a", encoding="utf-8") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
            code = None
    seconds = time.perf_counter() - start
    report["steps"][name] = {"status": "timed out" if code is None else ("ok" if code == 0 else f"exit {code}"),
                             "seconds": round(seconds, 1)}
    _log(out, f"=== {name}: {report['steps'][name]['status']} after {seconds:.0f} s")
    return code


def run_overrides(args, npz: Path, runs: Path) -> list[str]:
    overrides = ["sweep=evidence_lossy", "precision=fp32", f"dataset.npz={npz}", f"device={args.device}",
                 "hydra/launcher=bank", "resume=true", "wandb.mode=disabled", "progress=false", f"output_dir={runs}",
                 "keep_checkpoints=1"]
    if args.n_max is not None:
        overrides.append(f"dataset.n_max={args.n_max}")
    if args.epochs != 200:  # a dry run: the schedule shortened to fit
        overrides += [f"optim.epochs={args.epochs}", "optim.warmup_epochs=0", "optim.milestones=[]", "optim.factors=[]",
                      "eval_every=1"]
    return overrides


def pack_results(runs: Path, out: Path, env: dict) -> dict:
    """runs.tar.gz: the finished runs' summaries; resume-NN.tar: stopped runs with their newest checkpoint."""
    finished, stopped = [], []
    for metrics in sorted(runs.rglob("config.yaml")):
        run = metrics.parent
        if run.name == ".hydra":
            continue
        done = (run / "metrics.json").is_file() and json.loads((run / "metrics.json").read_text()).get("status") == "finished"
        (finished if done else stopped).append(run)
    staging = out.parent / "kit-staging"
    shutil.rmtree(staging, ignore_errors=True)
    if finished:
        subprocess.run([sys.executable, "scripts/collect_runs.py", "--runs", *map(str, finished), "--to", str(staging)],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        with tarfile.open(out / "runs.tar.gz", "w:gz") as tar:
            tar.add(staging, arcname="runs")
    chunks = 0
    if stopped:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for run in stopped:
                tar.add(run, arcname=str(run.relative_to(runs)),
                        filter=lambda info: None if "/wandb" in info.name else info)
        data = buffer.getvalue()
        for chunks, start in enumerate(range(0, len(data), MAX_OUT_FILE), start=1):
            (out / f"resume-{chunks - 1:02d}.tar").write_bytes(data[start : start + MAX_OUT_FILE])
    return {"finished": [r.name for r in finished], "stopped": [r.name for r in stopped], "resume_chunks": chunks}


def run(args) -> int:
    start = time.perf_counter()
    kit, out = Path(args.kit), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"steps": {}, "device": args.device, "epochs": args.epochs}
    env = ensure_packages(kit, out)
    work = Path(tempfile.mkdtemp(prefix="cbl-kit-"))
    unpack = subprocess.run([sys.executable, "-c", "import sys; from cbl.data.partial_copy import unpack; "
                             "print(unpack(sys.argv[1], sys.argv[2]))", str(kit / "data" / DATA_PACK), str(work / "data")],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    npz = Path(unpack.stdout.strip().splitlines()[-1])
    runs = work / "runs"
    resume = kit / "resume.tar"
    if resume.is_file():  # runs stopped by an earlier call continue from their checkpoints
        runs.mkdir(parents=True)
        with tarfile.open(resume) as tar:
            tar.extractall(runs, filter="data")
        _log(out, f"resuming the runs of {resume}")

    def left() -> float:
        return args.budget - (time.perf_counter() - start)

    if not args.skip_tests:
        step(out, report, "cuda tests", [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"],
             env, min(args.tests_seconds, left()))
    bench_reserve = 0 if args.skip_bench else args.bench_seconds
    step(out, report, "runs", [sys.executable, "-m", "cbl.train", *run_overrides(args, npz, runs)], env,
         left() - bench_reserve - 30)
    if not args.skip_bench:
        step(out, report, "bench", [sys.executable, "scripts/bench.py", "--device", args.device, "--npz", str(npz),
                                    "--json", str(out / "bench-gpu.json"), *args.bench_args.split()], env, left() - 20)
    report["runs"] = pack_results(runs, out, env)
    report["seconds"] = round(time.perf_counter() - start, 1)
    (out / "kit.json").write_text(json.dumps(report, indent=2) + "\n")
    _log(out, json.dumps(report))
    return 0 if all(s["status"] == "ok" for s in report["steps"].values()) else 1


# ----------------------------------------------------------------------------- ingest (here)
def ingest(args) -> int:
    back, kit = Path(args.folder), Path(args.kit)
    if not (back / "kit.json").is_file():
        print(f"device_kit: error: {back} holds no kit.json: not the files of a `device_kit.py run`", file=sys.stderr)
        return 2
    report = json.loads((back / "kit.json").read_text())
    print(json.dumps(report["steps"], indent=2))
    if (back / "runs.tar.gz").is_file():
        with tempfile.TemporaryDirectory() as tmp, tarfile.open(back / "runs.tar.gz") as tar:
            tar.extractall(tmp, filter="data")
            subprocess.run([sys.executable, str(ROOT / "scripts" / "collect_runs.py"), "--runs", f"{tmp}/runs",
                            "--to", args.to], check=True)
    if (back / "bench-gpu.json").is_file():
        shutil.copyfile(back / "bench-gpu.json", args.bench_to)
        subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--from-json", str(args.bench_to),
                        "--readme", str(args.readme)], cwd=ROOT, check=True)
    chunks = sorted(back.glob("resume-*.tar"))
    if chunks:
        kit.mkdir(exist_ok=True)
        (kit / "resume.tar").write_bytes(b"".join(c.read_bytes() for c in chunks))
        print(f"{len(chunks)} resume chunk(s) -> {kit / 'resume.tar'}: the next `run` continues the stopped runs")
    return 0


def main(argv: list[str] | None = None, prog: str = "device_kit.py") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--kit", default=str(ROOT / KIT), help=f"the kit's folder (default {KIT} in the checkout)")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="wheels and packed data into the kit's folder, size checked (here)")
    b.add_argument("--npz", default=os.environ.get("CBL_LOSSY_NPZ", str(ROOT.parent / "shared/data/cifar10_jpeg_lossy.npz")),
                   help="the lossy CIFAR-10 copy (default $CBL_LOSSY_NPZ, else ../shared/data/cifar10_jpeg_lossy.npz)")
    b.add_argument("--n-max", type=int, default=None, help="head-class size of the packed subset (default CIFAR-10's 5000)")
    b.add_argument("--no-wheels", action="store_true", help="pack the data only (where Hydra is installed there)")
    r = sub.add_parser("run", help="tests, runs and bench on the device, results into --out (there)")
    r.add_argument("--out", default=os.environ.get("OUT", "device_out"), help="where the results go (default $OUT)")
    r.add_argument("--device", default="cuda", help="cuda (default) or cpu (a dry run)")
    r.add_argument("--epochs", type=int, default=200, help="epochs of the runs (200: the paper's schedule)")
    r.add_argument("--n-max", type=int, default=None, help="dataset.n_max of the runs (as the kit was packed)")
    r.add_argument("--budget", type=float, default=570, help="seconds for the whole command (default 570)")
    r.add_argument("--tests-seconds", type=float, default=90, help="at most this long for the CUDA tests")
    r.add_argument("--bench-seconds", type=float, default=150, help="seconds kept for the benchmark")
    r.add_argument("--bench-args", default="--steps 60 --rounds 3 --warmup 10", help="more scripts/bench.py options")
    r.add_argument("--skip-tests", action="store_true")
    r.add_argument("--skip-bench", action="store_true")
    i = sub.add_parser("ingest", help="the files a run brought back into benchmarks/ and docs/ (here)")
    i.add_argument("folder", help="the folder the device tool copied the files to")
    i.add_argument("--to", default=str(ROOT / "benchmarks" / "evidence_gpu"), help="where the run summaries go")
    i.add_argument("--bench-to", default=str(ROOT / "benchmarks" / "gpu.json"), help="where the benchmark's JSON goes")
    i.add_argument("--readme", default=str(ROOT / "docs" / "performance.md"), help="the page its table goes into")
    args = p.parse_args(argv)
    return {"build": build, "run": run, "ingest": ingest}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
