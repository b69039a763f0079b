"""Bad input and faults, case by case (docs/robustness.md): each is refused before training with one line
(exit 2), stops with one line (exit 3 for a diverged run), or does the right thing."""
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
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
from acai.training.run_folder import CHECKPOINT, FAILED
from acai.training.loop import train

from conftest import kill_midway, tiny_args, tiny_config

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


# 11. Names, files and values of every shape ---------------------------------------------------------------

def one_line_exit(stop_or_code, capsys, *words, code=2):
    """A command's exit code (returned, or argparse's SystemExit) and its one line on stderr."""
    got = stop_or_code.value.code if isinstance(stop_or_code, pytest.ExceptionInfo) else stop_or_code
    assert got == code, capsys.readouterr().err
    return one_line_error(capsys, *words)


def images(folder: Path, count: int, classes=("a", "b")) -> Path:
    """`count` small labelled images in `classes` (a tenth of a folder is its test split)."""
    rng = np.random.default_rng(0)
    for i in range(count):
        (folder / classes[i % len(classes)]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / classes[i % len(classes)] / f"{i}.png")
    return folder


class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_report_escapes_every_name_from_a_path_a_config_or_a_file(tmp_path, capsys):
    data = images(tmp_path / "inj_data_<svg onload=alert(2)>", 40)
    run = tmp_path / "run"
    assert main(["train", "--model", "baseline", "--data", f"folder:{data}", "--out", str(run),
                 *tiny_args("baseline", samples=64, eval_every=32)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())  # values a file may hold, as a foreign writer would
    metrics.update(state='"><img src=x onerror=alert(3)>', torch_version="<b>t</b>")
    (run / "metrics.json").write_text(json.dumps(metrics))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    log[0]["state"] = "<script>alert(4)</script>"
    (run / "log.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in log))
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    tags = Tags(page).tags
    assert not [(tag, attrs) for tag, attrs in tags if tag == "script" or any(a.startswith("on") for a in attrs)]
    assert all("viewbox" in attrs for tag, attrs in tags if tag == "svg")  # the charts' own, no other (names lowered)
    assert not [attrs for tag, attrs in tags if tag == "img" and attrs.get("src") == "x"] and "<b>t</b>" not in page
    assert "&lt;svg onload=alert(2)&gt;" in page
    assert [a["data-block"] for _, a in tags if "data-block" in a] == [f"folder:{data}-dz256"]  # whole
    assert len(re.findall(re.escape("inj_data_&lt;svg onload=alert(2)&gt;"), page)) >= 3  # cell, heading, id


def test_a_diverged_run_is_refused_by_every_command_that_reads_its_checkpoint(tmp_path, image_folder, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "baseline", "--data", f"folder:{image_folder}", "--lr", "1e6", "--out", str(run),
                 *tiny_args("baseline", samples=64, eval_every=32)]) == 3
    capsys.readouterr()
    for argv in (["probe", str(run), "--samples", "64", "--quiet"], ["cluster", str(run), "--restarts", "2", "--quiet"],
                 ["samples", str(run), "--out", str(tmp_path / "s.png")],
                 ["interpolate", str(run), "--out", str(tmp_path / "g.png"), "--pairs", "1"]):
        assert main(argv) == 2, argv
        one_line_error(capsys, f"{run} diverged", f"acai {argv[0]} refuses it", "lower --lr")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "clock.jsonl", "failed.json", "log.jsonl"]
    assert not list(tmp_path.glob("*.png"))


def test_a_fresh_run_in_a_used_folder_leaves_nothing_of_the_previous_run(tmp_path, image_folder, capsys):
    run, data = tmp_path / "run", f"folder:{image_folder}"
    folder_run(image_folder, run)
    run_probe(run, samples=64, eval_every=64), cluster_run(run, restarts=2, iterations=5)
    assert main(["report", str(run)]) == 0
    (run / CHECKPOINT).unlink()  # what the advice for a damaged checkpoint says; then another model, killed
    kill_midway(tiny_config("acai", data=data, samples=512, eval_every=64), run)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "clock.jsonl", "log.jsonl"]
    assert ckpt.load_torch(run / CHECKPOINT)["config"]["model"] == "acai"
    assert main(["report", str(run)]) == 0
    rows = [attrs for tag, attrs in Tags((run / "report.html").read_text()).tags if tag == "tr" and "data-run" in attrs]
    assert [row["class"] for row in rows] == ["unfinished"]  # resumable, not done with the baseline's metrics


@pytest.mark.parametrize("argv", [
    ["train", "--model", "baseline", "--out", "R", "--samples", "1e999"],
    ["train", "--model", "baseline", "--out", "R", "--samples", "1e30"],
    ["train", "--model", "baseline", "--out", "R", "--samples", "1.55e1"],
    ["train", "--model", "baseline", "--out", "R", "--eval-every", "1e999"],
    ["train", "--model", "baseline", "--out", "R", "--eval-window", "inf"],
    ["cluster", "R", "--restarts", "1e999"],
    ["reproduce", "table1", "--out", "R", "--seeds", "1e999"],
    ["interpolate", "R", "--out", "g.png", "--steps", "1e999"],
])
def test_counts_that_are_not_finite_whole_numbers_are_argparse_errors(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "R") if a == "R" else a for a in argv])
    one_line_exit(stop, capsys, "expected a positive integer (at most 2^63 - 1)", repr(argv[-1]))
    assert not (tmp_path / "R").exists()


def test_samples_1e999_is_one_line_from_the_real_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "acai.cli", "train", "--model", "baseline", "--samples", "1e999",
                           "--out", str(tmp_path / "r")], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("seed", ["-1", "1180591620717411303424"])
def test_seeds_that_a_generator_refuses_are_refused_before_anything_is_written(tmp_path, capsys, seed):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        main(["train", "--model", "baseline", "--seed", seed, "--out", str(out),
              *[a for a in tiny_args("baseline") if not a.startswith("--seed")]])
    one_line_exit(stop, capsys, "expected a seed from 0 to 2^63 - 1")
    assert main(["train", "--model", "baseline", "--seeds", "2", "--out", str(out),
                 *[a for a in tiny_args("baseline") if not a.startswith("--seed")], f"--seed={2**63 - 1}"]) == 2
    one_line_error(capsys, "seed must be a whole number from 0 to 2^63 - 1")  # the stack's second seed is 2^63
    assert not out.exists()
    for bad in (-1, 2**63, 2**70, True):
        with pytest.raises(ConfigError, match="seed must be"):
            tiny_config(seed=bad)
    train([tiny_config("baseline", seed=2**63 - 1, samples=32, eval_every=32)], [out], progress=False)


def test_a_folder_too_small_for_one_interpolation_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "baseline", "--data", f"folder:{images(tmp_path / 'ten', 10)}", "--out", str(out),
                 *tiny_args("baseline", samples=64, eval_every=32)]) == 2
    one_line_error(capsys, "has 10 images, of which 1 in its test split", "15 or more")
    assert not out.exists()


def test_report_of_a_run_whose_folder_shrank_draws_what_its_test_split_allows(tmp_path, capsys):
    data, run = images(tmp_path / "images", 20), tmp_path / "run"  # 18 train, 2 test
    assert main(["train", "--model", "baseline", "--data", f"folder:{data}", "--out", str(run),
                 *tiny_args("baseline", samples=64, eval_every=32)]) == 0
    for extra in sorted(data.rglob("*.png"))[::2]:  # the folder loses half its images after the training
        extra.unlink()
    assert main(["report", str(run)]) == 0
    assert "Interpolations not drawn: the test split of folder:" in (run / "report.html").read_text()


def test_reproduce_checks_every_planned_run_before_training_any(tmp_path, capsys):
    from test_data_formats import write_mnist

    write_mnist(tmp_path / "data" / "mnist", n_train=64, n_test=16)
    out = tmp_path / "sweep"
    start = time.perf_counter()
    assert main(["reproduce", "table2", "--datasets", "mnist", "--latents", "32", "7", "--data-dir",
                 str(tmp_path / "data"), "--executor", "inline", "--probe-samples", "64", "--out", str(out),
                 "--quiet"]) == 2
    one_line_error(capsys, "dz=7 is not a multiple of the 4x4 latent grid")
    assert not out.exists() and time.perf_counter() - start < 30  # neither the pixel probe nor a run trained


def trained_lines_run(path: Path) -> Path:
    train([tiny_config("baseline", samples=64, eval_every=32)], [path], progress=False)
    return path


@pytest.mark.parametrize("damage, command, file", [
    ("metrics.json holds []", "report", "metrics.json"),
    ("log.jsonl lines without samples", "report", "log.jsonl"),
    ("sweep.json without preset", "status", "sweep.json"),
    ("checkpoint without step", "interpolate", "checkpoint.pt"),
    ("checkpoint config not its weights", "interpolate", "checkpoint.pt"),
])
def test_files_that_parse_but_have_another_shape_are_one_line_naming_them(tmp_path, capsys, damage, command, file):
    from acai.reproduce.plan import write_sweep

    from conftest import tiny_sweep

    if file == "sweep.json":
        folder = tmp_path / "sweep"
        write_sweep(tiny_sweep("table1", folder, models=("baseline",)), [])
        record = json.loads((folder / file).read_text())
        del record["spec"]["preset"]
        (folder / file).write_text(json.dumps(record))
    else:
        folder = trained_lines_run(tmp_path / "run")
        if file == "metrics.json":
            (folder / file).write_text("[]")
        elif file == "log.jsonl":
            (folder / file).write_text('{"evaluation": 0}\n')
        else:
            state = torch.load(folder / file, weights_only=False)
            if "step" in damage:
                del state["step"]
            else:
                state["config"]["depth"] = 8  # the weights are of depth 4
            torch.save(state, folder / file)
    argv = {"report": ["report", str(folder)], "status": ["status", str(folder)],
            "interpolate": ["interpolate", str(folder), "--out", str(tmp_path / "g.png"), "--pairs", "1"]}[command]
    assert main(argv) == 2
    one_line_error(capsys, str(folder / file))


CONSOLE_SCRIPT = Path(sys.executable).with_name("acai")
# Ctrl-C at the moment the command loads torch, the longest part of its start: an import hook raises
# KeyboardInterrupt there, as the signal's handler would.
CTRL_C_AT_IMPORT = ("import sys\nclass CtrlC:\n    def find_spec(self, name, path=None, target=None):\n"
                    "        if name == 'torch':\n            raise KeyboardInterrupt\n"
                    "sys.meta_path.insert(0, CtrlC())\n")


def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path):
    if not CONSOLE_SCRIPT.exists():
        pytest.skip(f"no console script at {CONSOLE_SCRIPT}")
    code = CTRL_C_AT_IMPORT + (f"import runpy\nsys.argv = ['acai', 'train', '--model', 'baseline', '--out', "
                               f"{str(tmp_path / 'r')!r}]\nrunpy.run_path({str(CONSOLE_SCRIPT)!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 130 and done.stderr == "acai: stopped by SIGINT while starting; nothing was done\n", \
        done.stderr
    # A real Ctrl-C half a second in (loading, or later on a fast machine): one line and 130 whenever it comes.
    process = subprocess.Popen([sys.executable, "-m", "acai.cli", "train", "--model", "baseline", "--out",
                                str(tmp_path / "r2"), *tiny_args("baseline", samples=1 << 22, eval_every=1 << 22)],
                               env=ENV, stderr=subprocess.PIPE, text=True,
                               # as at a terminal: a shell's background job would start with Ctrl-C ignored
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=300)[1]
    # 130, or killed by SIGINT (-2, which a shell also shows as 130): CPython ends so when the Ctrl-C
    # landed in an exec() of source text (a dataclass being made) after the command had started.
    assert process.returncode in (130, -signal.SIGINT) and err.count("\n") == 1 and "stopped by SIGINT" in err, err


@pytest.mark.parametrize("samples, batch, words", [
    ("40", "16", ["samples=40 is not a whole number of batches of 16", "--samples 32 or 48"]),
    ("16", "1e5", ["batch=100,000 is larger than samples=16"]),
])
def test_a_budget_must_be_whole_batches_no_larger_than_it(tmp_path, capsys, samples, batch, words):
    out = tmp_path / "run"
    assert main(["train", "--model", "baseline", "--out", str(out), "--samples", samples, "--batch", batch,
                 "--quiet"]) == 2
    one_line_error(capsys, *words)
    assert not out.exists()


def test_every_preset_plans_budgets_of_whole_batches():
    from acai.core.models import NAMES
    from acai.reproduce.plan import SweepSpec
    from acai.reproduce.presets import PRESETS

    for preset in PRESETS.values():
        for what in TABLES:
            for recipe in ("preset", "paper"):  # every config is checked as it is made
                runs = SweepSpec(what=what, out="x", preset=preset, seeds=1, models=NAMES, recipe=recipe).runs()
                assert all(run.config.samples % run.config.batch == 0 for run in runs)


def test_regularize_checks_its_parts_when_it_is_built():
    import acai

    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1024, 32), torch.nn.BatchNorm1d(32))
    decoder = torch.nn.Sequential(torch.nn.Linear(32, 1024), torch.nn.Unflatten(1, (1, 32, 32)))
    torch.manual_seed(5)
    model = acai.regularize(encoder, decoder, image_shape=(1, 32, 32))
    drawn_after = torch.rand(3)
    torch.manual_seed(5)
    acai.core.models.regularizer.image_critic((1, 32, 32), 16)  # what building draws, without the check
    assert torch.equal(torch.rand(3), drawn_after)  # the check drew nothing from the caller's generator
    assert model.training and encoder[2].training and encoder[2].num_batches_tracked == 0  # nor moved statistics
    with pytest.raises(ValueError, match=r"lam=-1 is not allowed: lam must be a finite number >= 0"):
        acai.regularize(encoder, decoder, image_shape=(1, 32, 32), lam=-1)
    with pytest.raises(ValueError, match=r"the encoder does not take images of image_shape \(1, 28, 28\)"):
        acai.regularize(encoder, decoder, image_shape=(1, 28, 28))
    with pytest.raises(ValueError, match=r"the decoder does not take the encoder's codes \(shape \(32,\) per image\)"):
        acai.regularize(encoder, torch.nn.Sequential(torch.nn.Linear(16, 1024)), image_shape=(1, 32, 32))
    with pytest.raises(ValueError, match=r"the decoder returns images of shape \(1, 16, 64\), but image_shape is"):
        acai.regularize(encoder, torch.nn.Sequential(torch.nn.Linear(32, 1024), torch.nn.Unflatten(1, (1, 16, 64))),
                        image_shape=(1, 32, 32))
    with pytest.raises(ValueError, match="image_shape must be the shape of one image"):
        acai.regularize(encoder, decoder, image_shape=(1, 32.0, 32))


def test_mnist_with_its_train_and_test_files_swapped_is_refused(tmp_path, capsys):
    from test_data_formats import REAL_MNIST, idx_bytes, write_mnist

    root = tmp_path / "data" / "mnist"
    write_mnist(root, n_train=20, n_test=10, compress=False)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):  # the test split holding 60,000
        count = 60_000
        (root / name).write_bytes(idx_bytes(np.zeros((count, 28, 28) if "images" in name else count, np.uint8)))
    out = tmp_path / "run"
    assert main(["train", "--model", "baseline", "--data", "mnist", "--data-dir", str(tmp_path / "data"),
                 "--out", str(out), *tiny_args("baseline", samples=64, eval_every=32)]) == 2
    one_line_error(capsys, "t10k-images-idx3-ubyte holds 60,000 images, as many as MNIST's train split",
                   "the train and test files are swapped")
    assert not out.exists()
    if not REAL_MNIST.exists():
        pytest.skip(f"the real MNIST files are not at {REAL_MNIST}")
    swapped = tmp_path / "real" / "mnist"
    swapped.mkdir(parents=True)
    for prefix, other in (("train", "t10k"), ("t10k", "train")):
        for kind in ("images-idx3", "labels-idx1"):
            (swapped / f"{prefix}-{kind}-ubyte.gz").symlink_to(REAL_MNIST / f"{other}-{kind}-ubyte.gz")
    assert main(["train", "--model", "baseline", "--data", "mnist", "--data-dir", str(tmp_path / "real"),
                 "--out", str(out), *tiny_args("baseline", samples=64, eval_every=32)]) == 2
    one_line_error(capsys, "train-images-idx3-ubyte.gz holds MNIST's test images, not its train images")


def test_a_second_ctrl_c_says_which_checkpoint_the_folder_keeps(tmp_path, capsys, monkeypatch):
    import functools

    from acai.training import loop

    def ctrl_c_twice(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # a request: save at the step's end
            os.kill(os.getpid(), signal.SIGINT)  # the second: stop at once, without saving

    monkeypatch.setattr(loop, "Hooks", functools.partial(loop.Hooks, after_step=ctrl_c_twice))
    run = tmp_path / "run"
    assert main(["train", "--model", "baseline", "--out", str(run), *tiny_args("baseline")]) == 130
    err = capsys.readouterr().err
    assert err == ("acai: stopped at once by a second Ctrl-C, without saving: the folder keeps only the step-0 "
                   "checkpoint (nothing trained is saved); rerun with --resume to continue from it\n")
    assert ckpt.load_torch(run / CHECKPOINT)["step"] == 0


def test_a_damaged_log_is_restored_from_the_intact_checkpoint_as_the_message_says(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--model", "baseline", "--out", str(run), *tiny_args("baseline", samples=64, eval_every=32)]
    assert main(args) == 0
    good = (run / "log.jsonl").read_text()
    (run / "log.jsonl").write_text("{not json\n")
    assert main(["report", str(run)]) == 2
    err = one_line_error(capsys, "log.jsonl is unreadable or damaged", "checkpoint.pt holds the same history",
                         "--resume")
    assert "delete the run folder" not in err
    (run / "log.jsonl").unlink()
    (run / "metrics.json").unlink()
    assert main([*args, "--resume"]) == 0
    assert (run / "log.jsonl").read_text() == good
    assert main(["report", str(run)]) == 0


def test_status_counts_the_samples_of_the_last_checkpoint(tmp_path, capsys):
    from acai.reproduce.plan import write_sweep
    from acai.training.loop import Hooks

    from conftest import tiny_sweep

    spec = tiny_sweep("table1", tmp_path, models=("baseline",), overrides=dict(eval_every=256, checkpoint_seconds=1e-9))
    write_sweep(spec, [])
    [run] = spec.runs()

    def die(step):
        if step == 5:
            raise SystemExit("killed")

    with pytest.raises(SystemExit):  # a checkpoint at every step, no evaluation yet
        train([run.config], [run.folder(tmp_path)], progress=False, hooks=Hooks(after_step=die))
    assert main(["status", str(tmp_path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if run.id in line)
    assert row.split()[1:4] == ["resumable", "80", "samples"], row


@pytest.mark.parametrize("flag", [["--data", "nosuch"], ["--data", "folder:/no/such/folder"], ["--device", "bogus"]])
def test_a_run_refused_after_its_folder_was_made_leaves_no_folder(tmp_path, capsys, flag):
    out = tmp_path / "a" / "run"
    assert main(["train", "--model", "baseline", *flag, "--out", str(out), *tiny_args("baseline")]) == 2
    one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_pictures_are_refused_a_name_that_is_not_png(tmp_path, capsys):
    run = trained_lines_run(tmp_path / "run")
    for command in (["interpolate", str(run), "--pairs", "1"], ["samples", str(run)]):
        assert main([*command, "--out", str(tmp_path / "x.jpg")]) == 2
        one_line_error(capsys, "--out", "must end in .png", "e.g. --out x.png")
    assert not list(tmp_path.glob("x.*"))


def test_report_on_a_read_only_folder_says_how_to_go_on(tmp_path, mounts, capsys):
    disk = mounts(tmp_path / "disk", "size=4m")
    trained_lines_run(disk / "run")
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    assert main(["report", str(disk / "run")]) == 2
    err = one_line_error(capsys, "is not writable", "acai report writes report.html into the folder it reports",
                         "copy it somewhere writable")
    assert "--out" not in err
