"""What a run needs to know of the machine it runs on: the device, whether it computes bfloat16, the
allocator's behaviour, free disk, and the source checkout that produced it (recorded in metrics.json)."""
from __future__ import annotations

import ctypes
import functools
import os
import platform
import shutil
import subprocess
from pathlib import Path

import torch

from acai.training.config import ConfigError


def cores() -> int:
    """The cores this process may use (a SLURM allocation or taskset may give fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@functools.cache
def keep_freed_memory() -> None:
    """Tell glibc to keep the memory a step frees, for the next step (once per process, on Linux).

    By default glibc hands large freed blocks back to the kernel, so every step's activations are
    page-faulted in again: an ACAI step on one core took ~45,000 minor faults and a fifth of its
    time in the kernel, against none for the release's TensorFlow graph (docs/speed.md). No
    mmap for large blocks and no trimming make the faults 0; the process then holds its peak
    memory between steps, which every step reaches anyway."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to set
        return
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, 1 << 30)


@functools.cache
def native_bfloat16(device: torch.device) -> bool:
    """Does `device` compute bfloat16 in hardware? On a CPU without it (AVX2 only) oneDNN emulates it:
    an ACAI step ran 7x slower in bfloat16 than in float32 on such a machine (docs/speed.md)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return True  # nothing to ask; the warning is for the common trap, a CPU without it
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: ask torch what it dispatches to
        return torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX")
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_model() -> str:
    """This machine's processor as /proc/cpuinfo names it (Linux), else its architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda or auto")
    return torch.device(name)


def check_room(run, checkpoint: Path) -> None:
    """ConfigError now if the folder of `checkpoint` (the run's first) cannot hold its later ones, rather
    than at the first of them.

    The step-0 checkpoint lacks Adam's two moments per parameter, so a later one is bigger
    by about twice the parameters' bytes, and it is written beside the previous one."""
    saved = checkpoint.stat().st_size
    moments = 2 * sum(p.numel() * p.element_size() for params in run.groups.values() for p in params)
    full = saved + (moments if run.step == 0 else 0)
    need = 2 * full - saved  # the previous checkpoint stays until the new one is complete
    out = checkpoint.parent
    free = shutil.disk_usage(out).free
    if free < need:
        raise ConfigError(f"{out} has {free / 1e6:.2f} MB free, but its checkpoints need about {need / 1e6:.2f} MB "
                          f"more (each is written beside the previous one); free space or choose another --out")


def provenance(device: torch.device) -> dict:
    """What produced a run: acai's version and commit (None outside a git checkout; git_dirty: uncommitted
    changes to tracked files), torch's version and the device."""
    from acai import __version__

    commit, dirty = source_commit()
    name = (torch.cuda.get_device_name(device) if device.type == "cuda" else
            f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    return {"acai_version": __version__, "git_commit": commit, "git_dirty": dirty, "torch_version": torch.__version__,
            "device": str(device), "device_name": name}


@functools.lru_cache(maxsize=1)
def source_commit() -> tuple[str | None, bool | None]:
    """(`git rev-parse HEAD`, dirty) of the checkout acai is imported from, or (None, None) when the
    package is not the root of a checkout (an installed copy, even one inside another repository)."""
    package = Path(__file__).resolve().parent
    try:
        top, commit = subprocess.run(["git", "-C", str(package), "rev-parse", "--show-toplevel", "HEAD"],
                                     capture_output=True, text=True, timeout=10, check=True).stdout.split()
        if Path(top).resolve() != package.parent:
            return None, None
        changes = subprocess.run(["git", "-C", top, "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError, ValueError):
        return None, None
    return commit, bool(changes.strip())
