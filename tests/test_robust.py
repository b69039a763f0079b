"""Bad input and faults, case by case (docs/robustness.md): each is refused before training with one line
(exit 2), stops with one line (exit 3 for a diverged run), or does the right thing."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from acai.training import checkpoint as ckpt
from acai.cli import main
from acai.training.config import ConfigError, TrainConfig
from acai.measures.represent import cluster_run, run_probe
from acai.reproduce.tables import TABLES, Cell, render
from acai.training.run import CHECKPOINT, FAILED
from acai.training.loop import train

from conftest import tiny_args, tiny_config

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert err.startswith("acai: error:") and "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture
def image_folder(tmp_path):
    """80 small labelled images in 2 classes: 72 train (a probe batch of 64 fits), 8 test."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(40):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


def folder_run(folder, out, samples=64):
    return train([tiny_config("baseline", data=f"folder:{folder}", samples=samples, eval_every=32)], [out],
                 progress=False)[0]


def tmpfs(path: Path, options: str):
    """A small tmpfs at `path` (root only: read-only and full disks, for real)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    return path


@pytest.fixture
def mounts():
    mounted = []
    yield lambda path, options: mounted.append(tmpfs(path, options)) or path
    for path in mounted:
        subprocess.run(["umount", str(path)], capture_output=True)


# 1. Stale results --------------------------------------------------------------------------------------------

def test_probe_and_cluster_are_recomputed_after_resume(tmp_path, image_folder):
    run = tmp_path / "run"
    folder_run(image_folder, run)
    probe = run_probe(run, samples=128, eval_every=64)
    cluster = cluster_run(run, restarts=2, iterations=5)
    assert run_probe(run, samples=128, eval_every=64)["checkpoint"] == probe["checkpoint"]  # reused: same checkpoint
    train([tiny_config("baseline", data=f"folder:{image_folder}", samples=128, eval_every=32)], [run], resume=True,
          progress=False)[0]
    assert run_probe(run, samples=128, eval_every=64)["checkpoint"] == ckpt.digest(run / CHECKPOINT) != \
        probe["checkpoint"]
    assert json.loads((run / "cluster.json").read_text())["checkpoint"] == cluster["checkpoint"]
    assert cluster_run(run, restarts=2, iterations=5)["checkpoint"] == ckpt.digest(run / CHECKPOINT)


# 2. Divergence ---------------------------------------------------------------------------------------------

def test_a_diverged_run_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "baseline", "--lr", "1e6", "--out", str(run), *tiny_args("baseline")]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("acai: run failed:") and "\n" not in err and "not finite at step" in err
    failed = json.loads((run / FAILED).read_text())
    assert failed["state"] == "diverged"
    state = ckpt.load_torch(run / CHECKPOINT)
    assert state["step"] < failed["step"]
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (run / "metrics.json").exists()


@pytest.mark.parametrize("lr", ["inf", "nan", "-1", "0"])
def test_learning_rate_must_be_finite_and_positive(tmp_path, capsys, lr):
    with pytest.raises(SystemExit) as stop:  # argparse's refusal: exit code 2
        main(["train", "--model", "baseline", "--lr", lr, "--out", str(tmp_path / "r"), *tiny_args("baseline")])
    assert stop.value.code == 2
    one_line_error(capsys, "--lr", "finite number > 0")
    assert not (tmp_path / "r").exists()
    for bad in (math.inf, math.nan, -1.0):
        with pytest.raises(ConfigError, match="lr"):
            tiny_config(lr=bad)
        with pytest.raises(ConfigError, match="group_lr"):
            tiny_config(group_lr={"ae": bad})


def test_tables_mark_diverged_runs_and_name_no_best_when_none_is_eligible():
    table = TABLES["table1"]
    cells = {("lines", 64): {
        "baseline": {"mean_distance": Cell([math.nan], ["diverged"]), "smoothness": Cell([math.nan], ["diverged"])},
        "acai": {"mean_distance": Cell([0.01], ["constant"]), "smoothness": Cell([math.nan], ["constant"])},
    }}
    markdown, _ = render(table, cells, 1, "header")
    assert "undefined (diverged)" in markdown
    assert "Smoothness: best none (no model eligible)" in markdown
    assert "**" not in markdown.split("| acai |")[1].split("\n")[0].split("|")[2]  # no bold smoothness


def test_a_sweep_with_a_diverged_run_writes_its_table_with_the_run_marked(tmp_path):
    from acai.reproduce.sweep import reproduce

    from conftest import tiny_sweep

    spec = tiny_sweep("table1", tmp_path, models=("baseline",), overrides=dict(samples=64, eval_every=32, lr=1e6))
    markdown = reproduce(spec, progress=False)
    assert "| lines | 64 | baseline | undefined (diverged) |" in markdown
    assert "best none (no model eligible)" in markdown


# 3. Two writers ----------------------------------------------------------------------------------------------

def test_a_second_writer_is_refused_and_a_dead_one_does_not_block(tmp_path, capsys):
    run = tmp_path / "run"
    with ckpt.folder_lock(run):  # a live writer (this process, through its own open file)
        assert main(["train", "--model", "baseline", "--out", str(run), *tiny_args("baseline")]) == 2
        one_line_error(capsys, "is being written by acai process")
    killed = subprocess.run([sys.executable, "-c", "import os, signal; from acai.training import checkpoint\n"
                             f"with checkpoint.folder_lock('{run}'):\n    os.kill(os.getpid(), signal.SIGKILL)"],
                            env=ENV)
    assert killed.returncode == -signal.SIGKILL and (run / ckpt.LOCK).exists()  # its lock file is left behind
    assert main(["train", "--model", "baseline", "--out", str(run), *tiny_args("baseline")]) == 0


# 4. Paths stored resolved --------------------------------------------------------------------------------------

def test_stored_paths_are_absolute_so_runs_work_from_any_folder(tmp_path, image_folder, monkeypatch, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert main(["train", "--model", "baseline", "--data", "folder:../images", "--data-dir", "../data",
                 "--out", "run", *tiny_args("baseline", samples=64, eval_every=32)]) == 0
    config = TrainConfig.from_dict(json.loads((tmp_path / "a" / "run" / "metrics.json").read_text())["config"])
    assert config.data == f"folder:{image_folder.resolve()}" and config.data_dir == str((tmp_path / "data").resolve())
    monkeypatch.chdir(tmp_path / "b")
    assert main(["interpolate", "../a/run", "--out", "grid.png", "--pairs", "2", "--steps", "3"]) == 0
    assert main(["probe", "../a/run", "--samples", "64", "--eval-every", "64", "--quiet"]) == 0
    # --resume accepts the same folders however they are spelled.
    assert main(["train", "--model", "baseline", "--data", f"folder:{image_folder}/../images/",
                 "--data-dir", str(tmp_path / "a" / ".." / "data"), "--out", "../a/run", "--resume",
                 *tiny_args("baseline", samples=96, eval_every=32)]) == 0


# 5. Small folders --------------------------------------------------------------------------------------------

def test_interpolate_never_reuses_an_image_of_a_small_test_split(tmp_path, image_folder, capsys):
    run = tmp_path / "run"
    folder_run(image_folder, run)
    for pairs in ("8", "7"):  # 8 test images: torch.cat() on nothing, or one end image drawn 7 times
        assert main(["interpolate", str(run), "--out", str(tmp_path / "g.png"), "--pairs", pairs]) == 2
        one_line_error(capsys, "has 8 images", f"needs {2 * int(pairs)}", "--pairs 4 or fewer")
    assert main(["interpolate", str(run), "--out", str(tmp_path / "g.png"), "--pairs", "2", "--steps", "3"]) == 0


# 6. Late failure ----------------------------------------------------------------------------------------------

def test_read_only_out_fails_before_training(tmp_path, mounts, capsys):
    out = mounts(tmp_path / "ro", "ro,size=1m")
    start = time.perf_counter()
    assert main(["train", "--model", "baseline", "--out", str(out), *tiny_args("baseline", samples=1 << 20)]) == 2
    one_line_error(capsys, "read-only")
    assert time.perf_counter() - start < 60  # nothing of the 2^20 samples was trained


def fill(disk: Path) -> None:
    """Take every free byte of `disk`, as another process writing there would."""
    with open(disk / "ballast", "ab", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass


@pytest.mark.parametrize("size", ["4k", "64k"])  # no room for a checkpoint; room for the first, not the later ones
def test_full_out_fails_before_training(tmp_path, mounts, capsys, size):
    out = mounts(tmp_path / "full", f"size={size}")
    assert main(["train", "--model", "baseline", "--out", str(out), *tiny_args("baseline", samples=1 << 20)]) == 2
    err = one_line_error(capsys)
    assert "disk full (ENOSPC)" in err or "MB free" in err
    assert not (out / CHECKPOINT).exists() or ckpt.load_torch(out / CHECKPOINT)["step"] == 0  # nothing trained
    assert not any(ckpt.TEMP_MARK in p.name for p in out.iterdir())  # no temp file left


# 7. One line, not a traceback ------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "foreign"])
def test_a_damaged_checkpoint_is_one_line_for_every_command(tmp_path, image_folder, capsys, damage):
    run = tmp_path / "run"
    folder_run(image_folder, run)
    good = (run / CHECKPOINT).read_bytes()
    if damage == "foreign":
        torch.save({"weights": torch.zeros(3)}, run / CHECKPOINT)
    else:
        (run / CHECKPOINT).write_bytes({"truncated": good[:len(good) // 2], "garbage": b"\x00garbage" * 64,
                                        "empty": b""}[damage])
    capsys.readouterr()
    for argv in (["interpolate", str(run), "--out", str(tmp_path / "g.png"), "--pairs", "1"],
                 ["probe", str(run), "--samples", "64", "--quiet"],
                 ["cluster", str(run), "--restarts", "2", "--quiet"],
                 ["train", "--model", "baseline", "--data", f"folder:{image_folder}", "--out", str(run), "--resume",
                  *tiny_args("baseline", samples=128, eval_every=32)]):
        assert main(argv) == 2, argv
        one_line_error(capsys, str(run / CHECKPOINT))


def test_out_that_is_a_file_or_empty_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["train", "--model", "baseline", "--out", str(tmp_path / "file"), *tiny_args("baseline")]) == 2
    one_line_error(capsys, "is a file, not a folder")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--model", "baseline", "--out", "", *tiny_args("baseline")]) == 2
    one_line_error(capsys, "--out is empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing written into the current folder
    assert main(["interpolate", "run", "--out", " "]) == 2
    one_line_error(capsys, "--out is empty")


def test_disk_full_at_a_later_checkpoint_is_one_line_and_keeps_the_old_one(tmp_path, mounts):
    from acai.training.loop import Hooks

    disk = mounts(tmp_path / "disk", "size=2m")
    run = disk / "run"
    config = tiny_config("baseline", samples=64, eval_every=32)
    with pytest.raises(ConfigError) as error:  # the disk fills up after the first step
        train([config], [run], progress=False, hooks=Hooks(after_step=lambda step: step == 1 and fill(disk)))[0]
    assert str(error.value).startswith(f"cannot write {run / CHECKPOINT}: disk full (ENOSPC); the previous "
                                       f"checkpoint.pt is intact") and "\n" not in str(error.value)
    assert ckpt.load_torch(run / CHECKPOINT)["step"] == 0  # the step-0 checkpoint, whole
    assert not [p for p in run.iterdir() if ckpt.TEMP_MARK in p.name]


@pytest.mark.parametrize("argv, words", [
    (["--model", "acai", "--hp", "lam=abc"], ["lam=abc", "finite number >= 0"]),
    (["--model", "vae", "--hp", "interpolate_mean=maybe"], ["interpolate_mean=maybe", "true or false"]),
    (["--model", "acai", "--hp", "critic_depth=0"], ["critic_depth=0", "integer >= 1 or none"]),
    (["--model", "vqvae", "--hp", "decay=2"], ["decay=2", "in [0, 1)"]),
    (["--model", "aae", "--hp", "critic_sizes=(64,-1)"], ["critic_sizes", "each >= 1"]),
    (["--model", "acai", "--hp", "gamma"], ["NAME=VALUE"]),
    (["--model", "baseline", "--scales", "9"], ["scales=9", "1 to 5"]),
])
def test_bad_values_are_refused_before_anything_is_written(tmp_path, capsys, argv, words):
    out = tmp_path / "run"
    tiny = [a for a in tiny_args("baseline") if not ("--scales" in argv and a.startswith("--scales"))]
    assert main(["train", *argv, "--out", str(out), *tiny]) == 2
    one_line_error(capsys, *words)
    assert not out.exists()


def test_damaged_results_are_one_line_or_recomputed(tmp_path, image_folder, capsys):
    from acai.reproduce.sweep import reproduce

    from conftest import tiny_sweep

    spec = tiny_sweep("table1", tmp_path / "sweep", models=("baseline",), overrides=dict(samples=64, eval_every=32))
    reproduce(spec, progress=False)
    folder = spec.runs()[0].folder(spec.out)
    for name, text in (("log.jsonl", "{not json\n"), ("metrics.json", "{garbage")):
        saved = (folder / name).read_text()
        (folder / name).write_text(text)
        with pytest.raises(ConfigError, match=f"{folder / name} is unreadable or damaged"):
            reproduce(spec, progress=False)
        (folder / name).write_text(saved)
    run = tmp_path / "run"
    folder_run(image_folder, run)
    probe, cluster = run_probe(run, samples=64, eval_every=64), cluster_run(run, restarts=2, iterations=5)
    (run / "probe.json").write_text("{garbage")
    (run / "cluster.json").write_text("[1, 2")
    assert run_probe(run, samples=64, eval_every=64)["accuracy"] == probe["accuracy"]
    assert cluster_run(run, restarts=2, iterations=5)["accuracy"] == cluster["accuracy"]
    assert json.loads((run / "probe.json").read_text())["accuracy"] == probe["accuracy"]


# 9. Signals --------------------------------------------------------------------------------------------------

def test_sigterm_saves_a_checkpoint_like_ctrl_c(tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "acai.cli", "train", "--model", "baseline", "--out", str(run),
                                *tiny_args("baseline", samples=1 << 22, eval_every=1 << 22)], env=ENV,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / CHECKPOINT).exists() and time.time() < deadline:  # the step-0 checkpoint: training starts
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    err = process.communicate(timeout=120)[1].strip()
    assert process.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in err and "\n" not in err
    assert ckpt.load_torch(run / CHECKPOINT)["step"] > 0


def test_a_temp_file_left_by_kill_9_mid_write_is_removed_by_the_next_run(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    subprocess.run([sys.executable, "-c", "import os, signal; from pathlib import Path; from acai.training import checkpoint\n"
                    "def write(handle):\n    handle.write(b'x' * 1_000_000); handle.flush()\n"
                    "    os.kill(os.getpid(), signal.SIGKILL)\n"
                    f"checkpoint._atomic(Path('{run / CHECKPOINT}'), write)"], env=ENV)
    left = [p.name for p in run.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".{CHECKPOINT}{ckpt.TEMP_MARK}")
    assert main(["train", "--model", "baseline", "--out", str(run), *tiny_args("baseline")]) == 0
    assert not [p for p in run.iterdir() if ckpt.TEMP_MARK in p.name]


# 10. Smaller things -----------------------------------------------------------------------------------------

def test_resume_with_fewer_samples_is_refused(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--model", "baseline", "--out", run, *tiny_args("baseline", samples=128)]) == 0
    assert main(["train", "--model", "baseline", "--out", run, "--resume", *tiny_args("baseline", samples=64)]) == 2
    one_line_error(capsys, "already trained 128 samples", "--samples 128 or more")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["config"]["samples"] == metrics["samples"] == 128
    # Without --samples, --resume continues to the run's own budget (not the paper's 2^24).
    assert main(["train", "--model", "baseline", "--out", run, "--resume",
                 *[a for a in tiny_args("baseline") if not a.startswith("--samples")]]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["samples"] == 128


def test_interpolate_needs_two_steps(tmp_path, capsys):
    assert main(["interpolate", str(tmp_path / "run"), "--out", str(tmp_path / "g.png"), "--steps", "1"]) == 2
    one_line_error(capsys, "at least 2 steps")


def test_progress_into_a_file_is_plain_lines(tmp_path, capsys):
    args = [a for a in tiny_args("baseline", samples=512) if a != "--quiet"]
    assert main(["train", "--model", "baseline", "--out", str(tmp_path / "run"), *args]) == 0
    err = capsys.readouterr().err  # not a terminal
    assert "\r" not in err and len(err.splitlines()) <= 10


def test_no_samples_says_the_budget_and_an_estimate_before_long(tmp_path):
    args = [a for a in tiny_args("baseline") if not a.startswith(("--samples", "--eval-every"))]
    process = subprocess.Popen([sys.executable, "-m", "acai.cli", "train", "--model", "baseline",
                                "--out", str(tmp_path / "run"), *args], env=ENV, stderr=subprocess.PIPE, text=True)
    said = [process.stderr.readline(), process.stderr.readline()]
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert "16,777,216 samples" in said[0] and "--samples N" in said[0]
    assert "samples/s" in said[1] and "will take about" in said[1]
