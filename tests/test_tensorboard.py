"""TensorBoard events (the optional extra), read back with tensorboard's own reader: they equal log.jsonl."""
import shutil
import subprocess
import sys

import numpy as np
import pytest

from acai.training.run_folder import read_log
from acai.cli import main

from conftest import tiny_args

ARGS = tiny_args("baseline", samples=400, eval_every=208)  # 25 steps: losses at step 25, evaluations at 13 and 25
METRICS = ("probe_accuracy", "mean_distance", "smoothness")


@pytest.fixture
def reader():
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                      reason="tensorboard is not installed (pip install 'acai[tensorboard]')")

    def read(folder):
        events = accumulator.EventAccumulator(str(folder / "tensorboard"),
                                              size_guidance={accumulator.SCALARS: 0, accumulator.IMAGES: 0})
        events.Reload()
        return events

    return read


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny run trained with --tensorboard and without."""
    root = tmp_path_factory.mktemp("tensorboard")
    run, plain = root / "tensorboard-run", root / "plain-run"
    assert main(["train", "--model", "baseline", "--out", str(run), "--tensorboard", *ARGS]) == 0
    assert main(["train", "--model", "baseline", "--out", str(plain), *ARGS]) == 0
    return run, plain


def same_as_log(events, log) -> None:
    for key in METRICS:
        scalars = events.Scalars(f"eval/{key}")
        assert [s.step for s in scalars] == [entry["samples"] for entry in log]
        # event files hold float32; NaN (undefined smoothness) compares equal to NaN here
        np.testing.assert_array_equal([s.value for s in scalars], np.float32([entry[key] for entry in log]))


def test_train_writes_events_equal_to_the_log_and_changes_nothing(runs, reader):
    run, plain = runs
    # the hooks change nothing the run learns or measures
    assert (run / "log.jsonl").read_text() == (plain / "log.jsonl").read_text()
    assert not (plain / "tensorboard").exists()
    log = read_log(run / "log.jsonl")
    events = reader(run)
    same_as_log(events, log)
    for loss in ("loss_ae", "loss_probe"):
        assert [s.step for s in events.Scalars(f"train/{loss}")] == [25 * 16]
    grids = events.Images("interpolations")
    assert [g.step for g in grids] == [entry["samples"] for entry in log]
    assert grids[-1].width > grids[-1].height > 0


def test_report_converts_existing_runs(runs, tmp_path, reader, capsys):
    trained, plain = tmp_path / "trained", tmp_path / "plain"
    shutil.copytree(runs[0], trained)
    shutil.copytree(runs[1], plain)
    for _ in range(2):  # converting again replaces what the last conversion wrote
        assert main(["report", "--tensorboard", str(tmp_path)]) == 0
        assert len(list((plain / "tensorboard").iterdir())) == 1
    out = capsys.readouterr().out
    assert f"{trained}: kept the events written while training" in out and f"{plain}: 2 evaluations" in out
    assert out.strip().endswith(f"wrote {tmp_path / 'report.html'}")  # and the page of the two runs
    log = read_log(plain / "log.jsonl")
    events = reader(plain)
    same_as_log(events, log)
    assert [g.step for g in events.Images("interpolations")] == [log[-1]["samples"]]  # from the final checkpoint
    assert not [tag for tag in events.Tags()["scalars"] if tag.startswith("train/")]  # losses are not in log.jsonl


@pytest.mark.parametrize("argv", [["report", "--tensorboard", "{tmp}"],
                                  ["train", "--model", "baseline", "--tensorboard", "--out", "{tmp}/run"]])
def test_without_tensorboard_one_line_and_exit_2(tmp_path, argv):
    hide = "import sys; sys.modules['tensorboard'] = None; from acai.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", hide, *[a.replace("{tmp}", str(tmp_path)) for a in argv]],
                            capture_output=True, text=True)
    assert result.returncode == 2 and not (tmp_path / "run").exists()
    err = result.stderr.strip()
    assert err.startswith("acai: error:") and "pip install 'acai[tensorboard]'" in err and "\n" not in err
