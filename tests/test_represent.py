"""Representation learning (tables 2, 3) and the real-data reproduction, on the real MNIST."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import acai.represent as represent
from acai.cli import main
from acai.config import ConfigError, TrainConfig
from acai.sweep import RunSpec, reproduce
from acai.train import train

from conftest import TINY_SETTINGS, tiny_sweep


def run_dir(out, data, dz, model, seed):
    return RunSpec(data, dz, model, seed, None).folder(out)

REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
# The tiny settings of conftest, on each data set's own architecture (scales and latent size).
TINY = {key: TINY_SETTINGS[key] for key in ("samples", "batch", "eval_every", "depth", "checkpoint_seconds")}


@pytest.fixture
def data_root(tmp_path):
    if not REAL_MNIST.exists():
        pytest.skip(f"the real MNIST is expected at {REAL_MNIST}")
    root = tmp_path / "data"
    root.mkdir()
    (root / "mnist").symlink_to(REAL_MNIST, target_is_directory=True)  # get_source reads ROOT/mnist
    return root


def blobs(n, k, d, seed, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3
    labels = rng.integers(0, k, n)
    return torch.tensor(centres[labels] + spread * rng.normal(size=(n, d)), dtype=torch.float32), torch.tensor(labels)


def test_linear_probe_learns_separable_classes_and_not_random_labels():
    x, y = blobs(3000, 5, 16, seed=0)
    good = represent.linear_probe(x[:2000], y[:2000], x[2000:], y[2000:], 5, samples=64 * 400, lr=1e-2,
                                  eval_every=64 * 100, window=2)
    assert good["accuracy"] > 95 and len(good["history"]) == 4
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    chance = represent.linear_probe(x[:2000], shuffled[:2000], x[2000:], shuffled[2000:], 5,
                                    samples=64 * 400, lr=1e-2, eval_every=64 * 100)
    assert chance["accuracy"] < 35  # 5 classes: 20 % expected


def test_pixel_probe_on_real_mnist(data_root):
    result = represent.pixel_probe("mnist", data_root, samples=64 * 200, lr=1e-3, eval_every=64 * 100, window=1)
    assert 80 < result["accuracy"] < 100  # a dense layer on pixels; the paper reaches 92.31 % after 2^24 samples


def test_pixel_probe_needs_a_labelled_fixed_training_set():
    with pytest.raises(ConfigError, match="no fixed labelled training set"):
        represent.pixel_probe("lines")


def test_cluster_run_scores_codes_and_caches_the_result(tmp_path, data_root, monkeypatch):
    folder = tmp_path / "run"
    train(TrainConfig(model="baseline", data="mnist", dz=32, data_dir=str(data_root), **TINY), folder, progress=False)
    result = represent.cluster_run(folder, restarts=4, iterations=50)
    saved = json.loads((folder / "cluster.json").read_text())
    assert saved["accuracy"] == result["accuracy"] and 10 < result["accuracy"] <= 100
    assert saved["codes"] == [60000, 32] and saved["restarts"] == 4
    def recompute(*args, **kwargs):
        raise RuntimeError("recomputed")

    monkeypatch.setattr(represent, "evaluate_clustering", recompute)
    assert represent.cluster_run(folder, restarts=4, iterations=50)["accuracy"] == result["accuracy"]
    with pytest.raises(RuntimeError, match="recomputed"):  # other settings: computed again
        represent.cluster_run(folder, restarts=5, iterations=50)


def test_run_probe_refuses_lines_runs(tmp_path):
    folder = tmp_path / "run"
    train(TrainConfig(model="baseline", data="lines", scales=2, latent=4, **TINY), folder, progress=False)
    with pytest.raises(ConfigError, match="labelled data set"):
        represent.run_probe(folder)


def test_tables_2_and_3_share_runs_and_print_the_paper(tmp_path, data_root, capsys):
    out = tmp_path / "real"
    common = dict(datasets=("mnist",), models=("baseline", "acai"), data_dir=str(data_root), lines=False)
    table2 = reproduce(tiny_sweep("table2", out, probe_samples=64 * 50, **common), progress=False)
    assert "98.25 ± 0.11" in table2 and "92.31" in table2 and "| mnist | 32 | acai |" in table2
    final = json.loads((run_dir(out, "mnist", 32, "acai", 0) / "probe.json").read_text())
    assert final["samples"] == 64 * 50 and f"{final['accuracy']:.2f}" in table2
    checkpoint = run_dir(out, "mnist", 32, "acai", 0) / "checkpoint.pt"
    trained_at = checkpoint.stat().st_mtime_ns
    table3 = reproduce(tiny_sweep("table3", out, restarts=3, **common), progress=False)
    assert checkpoint.stat().st_mtime_ns == trained_at  # reused, not retrained
    assert "94.38" in table3 and "acai ranks" in table3
    rows = json.loads((out / "table3.json").read_text())
    assert {r["model"] for r in rows} == {"baseline", "acai"}
    assert all(0 <= r["cluster_accuracy"] <= 100 for r in rows)
    assert (out / "table2.csv").exists() and (out / "pixels-mnist.json").exists()


def test_figures_draw_every_model_and_vae_samples(tmp_path, data_root):
    out = tmp_path / "real"
    reproduce(tiny_sweep("figures", out, datasets=("mnist",), models=("baseline", "vae"), data_dir=str(data_root),
                         lines=False, pairs=2), progress=False)
    paths = [out / "figures" / "figure5-mnist-dz32.png", out / "figures" / "mnist-dz32-vae-samples.png"]
    grid, samples = (Image.open(p) for p in paths)
    assert paths[0].name == "figure5-mnist-dz32.png"
    # 2 models x 2 pairs = 4 rows of 16 images (64 px + 2 px gap each, at scale 2)
    assert grid.size[1] == 4 * 66 + 2
    assert samples.size == (8 * 66 + 2, 8 * 66 + 2)
    assert np.asarray(samples).std() > 0


@pytest.mark.parametrize("argv, message", [
    (["probe"], "either a run folder"),
    (["probe", "{tmp}/run", "--data", "mnist"], "either a run folder"),
    (["cluster", "{tmp}/missing"], "no checkpoint"),
    (["reproduce", "table1", "--datasets", "mnist", "--out", "{tmp}/t"], "lines benchmark"),
    (["reproduce", "table3", "--datasets", "cifar10", "--out", "{tmp}/t"], "table3 covers mnist, svhn"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("acai: error:") and "\n" not in err
