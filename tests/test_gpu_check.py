"""benchmarks/gpu_check.py on a CPU in its small mode: it runs, and what it writes is sane."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from acai.core.models import MODELS
from acai.training.run import build_run, train_step

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import gpu_check  # noqa: E402


def test_step_with_noise_is_train_step():
    """The match check steps with given noise; with the noise train_step would draw, it is train_step."""
    class Args:
        small, batch = True, 16

    for model in ("acai", "vae"):
        a, b = (build_run(gpu_check.config(model, "cpu", Args)) for _ in range(2))
        for step in range(2):
            x, y = a.source.train_batch(0, step, 16)
            train_step(a, x, y)
            a.step += 1
            gpu_check.step_with_noise(b, x, y, b.model.draw_noise(16, b.generator, b.device, x.dtype))
        assert all(torch.equal(gpu_check.weights(a)[k], v) for k, v in gpu_check.weights(b).items())


def test_small_cpu_run_writes_sane_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    result = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), "--device", "cpu", "--small",
                             "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["small"] and report["ok"]
    assert set(report["match"]) == set(report["throughput"]) == set(report["stacked"]) == set(MODELS)
    for model in MODELS:
        match = report["match"][model]
        assert match["ok"] and match["loss_max_rel_diff"] == 0 and match["weights_differing"] == 0  # CPU vs CPU
        assert report["throughput"][model]["samples_per_second"] > 0
        assert [row["seeds"] for row in report["stacked"][model]] == [1, 2]
        assert all(row["samples_per_second"] > 0 for row in report["stacked"][model])
    projection = report["projection"]
    rate = report["throughput"]["acai"]["samples_per_second"]
    expected = (2**24 / rate + 256 * projection["evaluation_seconds"]) / 3600
    assert abs(projection["hours"] - expected) < 1e-9 * expected and projection["evaluation_seconds"] > 0
    assert set(projection["hours_per_seed_stacked"]) == {"1", "2"}
    assert report["peak_rss_mib"] > 0 and "all models match" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")
def test_asking_for_a_missing_gpu_is_one_line():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), "--device", "cuda"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr and result.stderr.count("\n") == 1
