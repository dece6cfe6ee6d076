"""Execution settings that change how fast a run goes, never what it computes (see docs/performance.md).

`tune_host_allocator()`: glibc's malloc hands a freed block above its mmap threshold straight back to the
kernel and trims the top of its heap beyond the trim threshold, so a CPU training step re-faults the pages of
its multi-megabyte activations every time (count them with `perf stat -e minor-faults` around a few steps).
Raising both thresholds keeps those blocks in the process; the
arithmetic is untouched.  `python -m cbl.train` does this when it trains on the CPU (set
`CBL_TUNE_MALLOC=0` to keep glibc's defaults); it does nothing off glibc.

`machine(device)`: what a run's times were measured on (metrics.json's "machine", the tables' time footers): the
CPU model or GPU name and the number of torch threads, since the same run takes twice as long on one machine of a
kind as on another; on a CPU also its vector instruction level and whether oneDNN has bf16 kernels for it.

`slow_bf16_warning(device, amp_dtype)`: bf16 autocast is fast on a CPU only where oneDNN has bf16 kernels (x86:
AVX-512 BW/VL/DQ or newer; Arm: the BF16 extension).  Elsewhere (an AVX2-only CPU) bf16 convolutions fall back to
generic code that is many times slower than float32 (docs/performance.md measures it), so a bf16 run there gets
one warning line.

`compile_options(value)`: the `compile` config value -> keyword arguments of `torch.compile`
(false: no compile; true / "default"; or a mode: "reduce-overhead" = CUDA graphs, "max-autotune",
"max-autotune-no-cudagraphs").  Shapes are static (`dynamic=False`): a run sees only a few batch shapes
(the training batch, the last partial batch, the eval batch), each compiled once, and CUDA graphs need
static shapes anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from pathlib import Path
from typing import Any

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# mallopt parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 2**30

_tuned = False


def tune_host_allocator() -> bool:
    """Keep freed blocks up to 32 MiB (and up to 1 GiB of free heap top) in the process; True when applied.

    Idempotent; a no-op (False) where the C library has no `mallopt` (not glibc) or when the environment
    variable CBL_TUNE_MALLOC is "0".
    """
    global _tuned
    if _tuned:
        return True
    if os.environ.get("CBL_TUNE_MALLOC", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned


def compile_options(value: Any) -> dict[str, Any] | None:
    """None for no compile, else the keyword arguments of torch.compile (see the module docstring)."""
    if value is False or value is None:
        return None
    if value is True or value == "default":
        return {"dynamic": False}
    if value in COMPILE_MODES:
        return {"mode": value, "dynamic": False}
    raise ValueError(f"compile must be true, false or one of {', '.join(COMPILE_MODES)}; got {value!r}")


def cpu_name() -> str:
    """The CPU model and the number of CPUs this process may use, e.g. "Intel(R) Xeon(R) Processor (2 CPUs)"."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({cpus} CPUs)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({cpus} CPUs)"


def onednn_bf16() -> bool | None:
    """Whether oneDNN has bf16 kernels for this CPU (the check torch's own tests use); None if torch cannot say."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN, or one that renamed the private check
        return None


def cpu_features() -> dict[str, Any]:
    """{"capability": the vector instructions torch's CPU kernels use ("AVX2", "AVX512", ...),
    "onednn_bf16": onednn_bf16()}."""
    import torch

    return {"capability": torch.backends.cpu.get_cpu_capability(), "onednn_bf16": onednn_bf16()}


def slow_bf16_warning(device, amp_dtype) -> str | None:
    """One line when bf16 autocast would run on a CPU without oneDNN bf16 kernels, else None."""
    import torch

    if amp_dtype is not torch.bfloat16 or torch.device(device).type != "cpu":
        return None
    features = cpu_features()
    if features["onednn_bf16"] is not False:
        return None
    return (f"precision=bf16 on a CPU without oneDNN bf16 kernels ({cpu_name()}, {features['capability']}): its "
            f"convolutions fall back to generic code, many times slower than precision=fp32 on this CPU; "
            f"`make bench BENCH_ARGS=\"--paths tensor+cl+alloc,tensor+cl+alloc+bf16\"` measures the ratio")


def machine(device) -> dict[str, Any]:
    """{"device": "cpu" | "cuda", "name": the CPU model or GPU name, "threads": torch's CPU threads}, plus
    cpu_features() on a CPU (bf16 speed depends on them)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return {"device": "cuda", "name": torch.cuda.get_device_name(device), "threads": torch.get_num_threads()}
    return {"device": "cpu", "name": cpu_name(), "threads": torch.get_num_threads(), **cpu_features()}
