"""The --device flag and the GPU path, checked on a CPU (CI has no GPU and never needs one)."""
import math

import pytest
import torch

from acai.training import checkpoint as ckpt
from acai.cli import main
from acai.training.config import ConfigError
from acai.training.run import evaluate, load_run, resolve_device
from acai.training.run_folder import CHECKPOINT
from acai.training.loop import train

from conftest import tiny_config

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")


def test_auto_picks_the_gpu_only_when_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    with pytest.raises(ConfigError, match="use cpu, cuda or auto"):
        resolve_device("tpu")


@no_gpu
def test_asking_for_cuda_without_one_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["train", "--model", "baseline", "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no CUDA GPU is visible" in err and "\n" not in err


@no_gpu
def test_a_run_trained_on_a_gpu_opens_on_a_cpu(tmp_path):
    config = tiny_config("vae", samples=64, eval_every=64, seed=0)
    train([config], [tmp_path], progress=False)[0]
    state = ckpt.load_torch(tmp_path / CHECKPOINT)
    state["config"]["device"], state["generator_device"] = "cuda", "cuda"  # as a GPU run would save it
    state["generator"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state; no CPU one fits it
    ckpt.save_torch(state, tmp_path / CHECKPOINT)
    run = load_run(tmp_path)
    assert run.device == torch.device("cpu") and next(run.model.parameters()).device.type == "cpu"
    assert math.isfinite(evaluate(run)["mean_distance"])  # an untrained tiny VAE can score above 1
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        load_run(tmp_path, device="cuda")
