"""A run folder's state, decided in one place for `acai status` and `acai report`; made by hand, nothing trains."""
import json

import pytest

from acai.training import checkpoint as ckpt
from acai.training.config import ConfigError
from acai.training.run_folder import CHECKPOINT, FAILED, LOG, METRICS, STATES, is_run, read_log, state

from conftest import tiny_config


def write_finished(folder, config, samples=256) -> None:
    """metrics.json and log.jsonl as a finished run of `config` leaves them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / METRICS).write_text(json.dumps(dict(config=config.to_dict(), samples=samples, seconds=1.0,
                                                  samples_per_second=256.0)))
    (folder / LOG).write_text(json.dumps(dict(samples=samples, mean_distance=0.01, smoothness=0.2, state="ok")) + "\n")


def test_each_state_of_a_run_folder(tmp_path):
    config = tiny_config("baseline")
    folder = tmp_path / "run"
    assert state(folder).name == state(folder, config).name == "not started" and not is_run(folder)
    folder.mkdir()
    (folder / CHECKPOINT).write_bytes(b"")  # only its presence counts
    assert state(folder).name == state(folder, config).name == "resumable" and is_run(folder)
    write_finished(folder, config)
    done, done_as_config = state(folder), state(folder, config)
    assert done.name == done_as_config.name == "done"
    assert done.metrics["samples"] == 256 and "mean_distance" not in done.metrics  # metrics.json as written
    assert done_as_config.metrics["mean_distance"] == 0.01  # summarised with the config's eval_window
    with ckpt.folder_lock(folder):
        assert state(folder).name == state(folder, config).name == "running"
    (folder / FAILED).write_text(json.dumps(dict(error="the ae loss is not finite at step 3", step=3)))
    failed = state(folder, config)
    assert failed.name == state(folder).name == "failed"
    assert failed.failure() == {"error": "the ae loss is not finite at step 3", "step": 3}
    assert set(STATES) == {"running", "failed", "done", "resumable", "not started"}  # each seen above


def test_a_finished_run_of_other_settings_is_failed_for_the_config_and_done_without_one(tmp_path):
    folder = tmp_path / "run"
    write_finished(folder, tiny_config("baseline", lr=1e-3))
    refused = state(folder, tiny_config("baseline"))
    assert refused.name == "failed" and "holds a finished run with other settings" in refused.failure()["error"]
    assert state(folder).name == "done"


def test_a_damaged_failed_json_is_read_only_when_asked(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / FAILED).write_text("{not json")
    failed = state(folder)  # the report shows the run as failed without reading why
    assert failed.name == "failed"
    with pytest.raises(ConfigError, match="failed.json is unreadable or damaged"):
        failed.failure()  # acai status says why, and so reads it


def test_a_damaged_log_names_the_checkpoint_that_restores_it(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOG).write_text("{not json\n")
    with pytest.raises(ConfigError, match=f"delete the run folder {folder} and train it again"):
        read_log(folder / LOG)
    (folder / CHECKPOINT).write_bytes(b"")
    with pytest.raises(ConfigError, match=f"its run's {CHECKPOINT} holds the same history: delete {LOG} and {METRICS}"):
        read_log(folder / LOG)
