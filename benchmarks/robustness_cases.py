"""The cases of issue 15 as real commands, against any checkout of acai: exit code and last line of each.

    python benchmarks/robustness_cases.py --tree /path/to/checkout --json before.json
    python benchmarks/robustness_cases.py --tree . --json after.json
    python benchmarks/robustness_cases.py --table before.json after.json   # -> markdown (docs/robustness.md)

Runs are tiny (a 2-scale, depth-4 network, tens of samples). Cases 6 and 7 (read-only and
full output folders) mount small tmpfs folders and so need root; without it they are skipped.
MNIST cases read it from $ACAI_DATA_DIR (default /work/shared/data).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

TINY = "--samples 64 --batch 16 --eval-every 32 --scales 2 --depth 4 --latent 4 --quiet"
CR, LF = b"\r", b"\n"
MNIST = os.environ.get("ACAI_DATA_DIR", "/work/shared/data")


class Cases:
    def __init__(self, tree: Path, work: Path):
        self.tree, self.work, self.rows = tree.resolve(), work, []
        # One thread per process: the tiny runs gain nothing from more, and on a busy machine
        # oversubscribed thread pools made them 10x slower.
        self.env = {**os.environ, "PYTHONPATH": str(self.tree), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def run(self, command: str, cwd: Path | None = None, timeout: int = 600):
        """`acai ...` in `cwd` -> (exit code, output lines)."""
        argv = [sys.executable, "-m", "acai.cli", *shlex.split(command)[1:]]
        result = subprocess.run(argv, cwd=cwd or self.work, env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode:
            print(f"  ({command} -> exit {result.returncode}: {result.stderr.strip()[-300:]})", file=sys.stderr)
        return result.returncode, (result.stdout + result.stderr).splitlines()

    def case(self, number: str, what: str, command: str, cwd: Path | None = None, check=None, pick=None):
        code, lines = self.run(command, cwd)
        lines = [line.strip() for line in lines if line.strip()]
        last = next((line for line in reversed(lines) if pick and re.search(pick, line)), lines[-1] if lines else "")
        if check is not None:
            last = f"{last} [{check()}]"
        shown = command.replace(str(self.work), "W")
        self.rows.append(dict(case=number, what=what, command=shown + (f" (in W/{cwd.relative_to(self.work)})"
                                                                       if cwd and cwd != self.work else ""),
                              code=code, last=last.replace(str(self.work), "W")))
        print(f"{number} {what}: exit {code}: {last[:200]}", file=sys.stderr, flush=True)

    def folder_data(self, name: str, per_class: int) -> Path:
        """A labelled folder of 2 classes of small PNGs, a tenth of them in the test split."""
        root = self.work / name
        rng = np.random.default_rng(0)
        for label in ("a", "b"):
            (root / label).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(root / label / f"{i}.png")
        return root


def mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


def all_cases(c: Cases) -> None:
    w = c.work
    folder = c.folder_data("folder", 40)  # 72 training images: a probe batch of 64 fits
    small = c.folder_data("small", 20)  # 4 test images

    # 1. Stale results: probe.json and cluster.json after the run was resumed to more samples.
    c.run(f"acai train --model baseline --data folder:{folder} --out {w}/r1 {TINY}")
    c.run(f"acai probe {w}/r1 --samples 320 --eval-every 64 --quiet")
    c.run(f"acai cluster {w}/r1 --restarts 2 --iterations 5 --quiet")
    stamps = {name: (w / "r1" / name).stat().st_mtime_ns if (w / "r1" / name).exists() else None
              for name in ("probe.json", "cluster.json")}
    c.run(f"acai train --model baseline --data folder:{folder} --out {w}/r1 {TINY.replace('64 ', '128 ', 1)} "
          f"--resume")

    def fresh(name):
        return lambda: ("recomputed for the resumed checkpoint" if (w / "r1" / name).stat().st_mtime_ns
                        != stamps[name] else f"STALE: {name} of the older checkpoint reused")

    c.case("1", "probe after --resume to more samples", f"acai probe {w}/r1 --samples 320 --eval-every 64 --quiet",
           check=fresh("probe.json"))
    c.case("1", "cluster after --resume to more samples", f"acai cluster {w}/r1 --restarts 2 --iterations 5 --quiet",
           check=fresh("cluster.json"))

    # 2. Divergence.
    metrics = "mean_distance|probe_accuracy|error|failed"
    c.case("2", "lr 1e6 diverges", f"acai train --model baseline --data lines --lr 1e6 --out {w}/r2 {TINY}",
           pick=metrics)
    c.case("2", "VAE on MNIST, lr 10", f"acai train --model vae --data mnist --data-dir {MNIST} --lr 10 "
           f"--out {w}/r2vae {TINY.replace('64 ', '256 ', 1)}", pick=metrics)
    c.case("2", "interpolate the diverged run", f"acai interpolate {w}/r2 --out {w}/r2.png --pairs 2 --steps 4",
           check=lambda: f"PNG mean pixel {np.asarray(Image.open(w / 'r2.png').convert('L')).mean():.0f}"
           if (w / "r2.png").exists() else "no PNG")
    c.case("2", "--lr inf", f"acai train --model baseline --lr inf --out {w}/r2inf {TINY}", pick=metrics)
    c.case("2", "--lr nan", f"acai train --model baseline --lr nan --out {w}/r2nan {TINY}")

    # 3. Two writers, one folder: the second starts while the first trains.
    command = f"acai train --model baseline --out {w}/r3 --samples 2048 --batch 16 --eval-every 2048 " \
              f"--scales 2 --depth 4 --latent 4 --quiet"
    first = subprocess.Popen([sys.executable, "-m", "acai.cli", *shlex.split(command)[1:]], cwd=w, env=c.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (w / "r3").exists() and first.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)
    running = first.poll() is None
    c.case("3", "a second writer while the first trains", command,
           check=lambda: f"the first was {'running' if running else 'done'} when the second started; "
                         f"it exited {first.wait()}")

    # 4. Paths stored as typed.
    (w / "sub1").mkdir()
    (w / "sub2" / "x").mkdir(parents=True)  # another depth: ../folder is not the same folder from here
    os.symlink(MNIST, w / "data")
    c.run(f"acai train --model baseline --data folder:../folder --out r4 {TINY}", cwd=w / "sub1")
    c.case("4", "interpolate from another working folder (--data folder:../folder)",
           "acai interpolate ../../sub1/r4 --out g.png --pairs 1 --steps 4", cwd=w / "sub2" / "x")
    c.case("4", "probe from another working folder", "acai probe ../../sub1/r4 --samples 128 --eval-every 64 --quiet",
           cwd=w / "sub2" / "x")
    c.run(f"acai train --model baseline --data mnist --data-dir ../data --out r4m {TINY}", cwd=w / "sub1")
    c.case("4", "--resume, the same --data-dir spelled differently",
           f"acai train --model baseline --data mnist --data-dir {w}/data/ --out r4m {TINY.replace('64 ', '128 ', 1)} "
           f"--resume", cwd=w / "sub1")

    # 5. Small folders: 40 images, 4 of them in the test split.
    c.run(f"acai train --model baseline --data folder:{small} --out {w}/r5 {TINY}")
    c.case("5", "interpolate --pairs 8, 4 test images", f"acai interpolate {w}/r5 --out {w}/r5.png --pairs 8")
    c.case("5", "interpolate --pairs 3, 4 test images", f"acai interpolate {w}/r5 --out {w}/r5b.png --pairs 3")

    # 6. Read-only and full output folders.
    if mount_tmpfs(w / "ro", "ro,size=1m"):
        c.case("6", "read-only --out", f"acai train --model baseline --out {w}/ro {TINY}")
        umount(w / "ro")
    if mount_tmpfs(w / "full", "size=64k"):
        c.case("6", "--out on a full disk (64 KB free)", f"acai train --model baseline --out {w}/full {TINY}")
        umount(w / "full")

    # 7. Tracebacks where one line was promised.
    c.run(f"acai train --model baseline --data folder:{folder} --out {w}/r7 {TINY}")
    good = (w / "r7" / "checkpoint.pt").read_bytes()
    for what, data, command in (
            ("truncated", good[:len(good) // 2], f"acai interpolate {w}/r7 --out {w}/r7.png --pairs 1"),
            ("garbage", b"not a checkpoint\n" * 50, f"acai probe {w}/r7 --samples 128 --eval-every 64 --quiet"),
            ("empty", b"", f"acai cluster {w}/r7 --restarts 2 --iterations 5 --quiet"),
            ("truncated", good[:len(good) // 2], f"acai train --model baseline --data folder:{folder} --out {w}/r7 "
                                                 f"{TINY} --resume")):
        (w / "r7" / "checkpoint.pt").write_bytes(data)
        c.case("7", f"{what} checkpoint.pt", command)
    (w / "r7" / "checkpoint.pt").write_bytes(good)
    (w / "afile").write_text("x")
    c.case("7", "--out is a file", f"acai train --model baseline --out {w}/afile {TINY}")
    if mount_tmpfs(w / "disk", "size=4m"):  # the disk fills up once the first checkpoint is written
        command = f"acai train --model baseline --out {w}/disk/run --samples 8192 --batch 16 --eval-every 2048 " \
                  f"--scales 2 --depth 4 --latent 4 --quiet"
        process = subprocess.Popen([sys.executable, "-m", "acai.cli", *shlex.split(command)[1:]], cwd=w, env=c.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while not (w / "disk" / "run" / "checkpoint.pt").exists() and process.poll() is None:
            time.sleep(0.01)
        time.sleep(0.3)  # training has started (and the next checkpoint is 128 steps away)
        with open(w / "disk" / "ballast", "ab", buffering=0) as handle:  # as another process filling the disk would
            try:
                while True:
                    handle.write(b"\0" * 4096)
            except OSError:
                pass
        output = [line for line in process.communicate()[0].splitlines() if line.strip()]
        intact = subprocess.run([sys.executable, "-c", f"import torch; print(torch.load('{w}/disk/run/checkpoint.pt', "
                                 f"weights_only=False)['step'])"], capture_output=True, text=True, cwd=w).stdout.strip()
        c.rows.append(dict(case="7", what="the disk fills up during training", command=command.replace(str(w), "W"),
                           code=process.returncode, last=(output[-1] if output else "").replace(str(w), "W") +
                           f" [checkpoint.pt: {'readable, step ' + intact if intact else 'unreadable'}]"))
        umount(w / "disk")
    c.case("7", "--hp lam=abc", f"acai train --model acai --hp lam=abc --out {w}/r7lam {TINY}",
           check=lambda: f"folder left: {sorted(p.name for p in (w / 'r7lam').iterdir())}"
           if (w / "r7lam").exists() else "no folder left")
    c.case("7", "--scales 9", f"acai train --model baseline --scales 9 --out {w}/r7s --samples 64 --quiet")
    for old, new in (("runs/baseline/seed0", "runs/lines-dz64/baseline/seed0"),):
        for sub in (old, new):
            (w / "sweep" / sub).mkdir(parents=True, exist_ok=True)
            (w / "sweep" / sub / "metrics.json").write_text("{garbage")
    c.case("7", "damaged metrics.json in reproduce",
           f"acai reproduce table1 --models baseline --out {w}/sweep --quiet")
    (w / "r7" / "probe.json").write_text("{garbage")
    c.case("7", "damaged probe.json", f"acai probe {w}/r7 --samples 128 --eval-every 64 --quiet")
    (w / "r7" / "cluster.json").write_text("[1, 2")
    c.case("7", "damaged cluster.json", f"acai cluster {w}/r7 --restarts 2 --iterations 5 --quiet")

    # 8. Values not checked.
    c.case("8", "--hp interpolate_mean=maybe", f"acai train --model vae --hp interpolate_mean=maybe --out {w}/r8a {TINY}")
    c.case("8", "--hp critic_depth=0", f"acai train --model acai --hp critic_depth=0 --out {w}/r8b {TINY}")
    c.case("8", "VQ-VAE --hp decay=2",
           f"acai train --model vqvae --hp decay=2 --hp codebook_log2=6 --out {w}/r8c {TINY}")

    # 9. Signals.
    command = f"acai train --model baseline --out {w}/r9 --samples 100000 --batch 16 --eval-every 100000 " \
              f"--scales 2 --depth 4 --latent 4 --quiet"
    process = subprocess.Popen([sys.executable, "-m", "acai.cli", *shlex.split(command)[1:]], cwd=w, env=c.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Importing torch and building the run take from 2 to over 10 s on a busy machine (a fixed 10 s once
    # signalled a process still starting up, which then died with nothing to save): wait for the step-0
    # checkpoint, which is written before the first step, then let it train for 5 s.
    deadline = time.monotonic() + 120
    while not (w / "r9" / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(5.0)
    process.send_signal(signal.SIGTERM)
    output = [line for line in process.communicate()[0].splitlines() if line.strip()]
    step = subprocess.run([sys.executable, "-c", f"import torch; print(torch.load('{w}/r9/checkpoint.pt', "
                           f"weights_only=False)['step'])"], capture_output=True, text=True, cwd=w).stdout.strip()
    c.rows.append(dict(case="9", what="SIGTERM 5 s into training", command=command.replace(str(w), "W") + "; kill -TERM",
                       code=process.returncode, last=(output[-1] if output else "") +
                       f" [checkpoint: {'step ' + step if step else 'none'}]"))
    # kill -9 in the middle of a checkpoint write, with the checkout's own atomic writer.
    (w / "r9k").mkdir()
    subprocess.run([sys.executable, "-c", "import os, signal; from pathlib import Path; from acai import checkpoint\n"
                    "def write(handle):\n    handle.write(b'x' * 11_000_000); handle.flush()\n"
                    "    os.kill(os.getpid(), signal.SIGKILL)\n"
                    f"checkpoint._atomic(Path('{w}/r9k/checkpoint.pt'), write)"], env=c.env, cwd=w)
    left = sorted(p.name for p in (w / "r9k").iterdir())
    c.case("9", "a new run in a folder where kill -9 hit a checkpoint write",
           f"acai train --model baseline --out {w}/r9k {TINY}",
           check=lambda: f"left by kill -9: {left}; now: "
                         f"{[p.name for p in (w / 'r9k').iterdir() if p.name.startswith('.') and p.name != '.lock']}")

    # 10. Smaller things.
    c.run(f"acai train --model baseline --out {w}/r10 {TINY.replace('64 ', '128 ', 1)}")
    c.case("10", "--resume with a smaller --samples", f"acai train --model baseline --out {w}/r10 {TINY} --resume",
           check=lambda: "metrics.json: config samples {config[samples]}, samples {samples}".format(
               **json.loads((w / "r10" / "metrics.json").read_text())))
    (w / "empty").mkdir()
    c.case("10", '--out ""', f"acai train --model baseline --out '' {TINY}", cwd=w / "empty",
           check=lambda: f"files written here: {sorted(p.name for p in (w / 'empty').iterdir())}")
    c.case("10", "interpolate --steps 1", f"acai interpolate {w}/r10 --out {w}/s1.png --steps 1 --pairs 1")
    log = w / "progress.log"
    argv = [sys.executable, "-m", "acai.cli", "train", "--model", "baseline", "--out", f"{w}/r10q", "--samples",
            "16384", "--eval-every", "16384", "--scales", "2", "--depth", "4", "--latent", "4"]
    with open(log, "w") as handle:
        code = subprocess.run(argv, cwd=w, env=c.env, stdout=subprocess.DEVNULL, stderr=handle).returncode
    data = log.read_bytes()  # bytes: reading text would turn each carriage return into a line end
    c.rows.append(dict(case="10", what="progress when stderr is a file (16,384 samples)",
                       command=" ".join(["acai", *argv[3:]]).replace(str(w), "W") + " 2> log", code=code,
                       last=f"log: {len(data):,} bytes, {data.count(CR):,} carriage returns, "
                            f"{data.count(LF)} line ends"))
    # Without --samples: what is said before training (stopped after 60 s; SIGTERM, as a script run in the
    # background ignores SIGINT).
    argv = [sys.executable, "-m", "acai.cli", "train", "--model", "acai", "--out", f"{w}/r10s", "--quiet"]
    process = subprocess.Popen(argv, cwd=w, env=c.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(60)
    process.send_signal(signal.SIGTERM)
    output = [line for line in process.communicate()[0].splitlines() if line.strip()]
    said = [line for line in output if "samples" in line and "stopped" not in line]
    c.rows.append(dict(case="10", what="train without --samples (lines said in the first 60 s)",
                       command=f"acai train --model acai --out W/r10s --quiet", code=process.returncode,
                       last=" / ".join(said) or "(nothing)"))


def table(before: list[dict], after: list[dict]) -> str:
    def cell(row):
        text = row["last"].replace("|", "\\|")
        return f"{row['code']} | `{text[:300]}`" if text else f"{row['code']} | (no output)"

    lines = ["| # | case | command | exit before | last line before | exit after | last line after |",
             "|---|---|---|---|---|---|---|"]
    for b, a in zip(before, after):
        lines.append(f"| {a['case']} | {a['what']} | `{a['command']}` | {cell(b)} | {cell(a)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, help="the acai checkout to run")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--table", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="rows -> markdown")
    args = parser.parse_args()
    if args.table:
        print(table(*(json.loads(p.read_text()) for p in args.table)))
        return
    with tempfile.TemporaryDirectory(prefix="acai-cases-") as work:
        cases = Cases(args.tree, Path(work))
        try:
            all_cases(cases)
        finally:
            for name in ("ro", "full", "disk"):
                umount(Path(work) / name)
            if args.json:
                args.json.write_text(json.dumps(cases.rows, indent=1))


if __name__ == "__main__":
    main()
