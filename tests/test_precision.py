"""precision="bfloat16": the training forward runs under autocast, everything else stays float32."""
import warnings

import pytest
import torch

from acai.cli import main
from acai.training.config import ConfigError, TrainConfig
from acai.core.nets import mse
from acai.training.run import build_run, evaluate, train_step
from acai.training.loop import train

from conftest import tiny_config


def conv_dtypes(run) -> list:
    """Output dtypes of the encoder's first 3x3 convolution, recorded from now on."""
    seen = []
    run.model.encoder[1].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    return seen


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown precision 'float16'; use float32 or bfloat16"):
        TrainConfig(precision="float16")


def test_a_run_given_no_precision_trains_in_float32():
    """bfloat16 is opt-in: a run that does not ask for it runs its training forward in float32."""
    run = build_run(tiny_config("acai"))
    seen = conv_dtypes(run)
    x, y = run.source.train_batch(0, 0, 16)
    train_step(run, x, y)
    assert seen == [torch.float32]


def test_vqvae_quantises_in_float32_under_bf16():
    run = build_run(tiny_config("vqvae", precision="bfloat16"))
    seen, vectors = conv_dtypes(run), []
    run.model.project.register_forward_hook(lambda module, inputs, output: vectors.append(output.dtype))
    codebook = run.model.codebook.clone()
    x, y = run.source.train_batch(0, 0, 16)
    train_step(run, x, y)
    assert seen == [torch.bfloat16] and vectors == [torch.float32]
    assert run.model.codebook.dtype == torch.float32 and not torch.equal(run.model.codebook, codebook)


@pytest.mark.parametrize("model", ["acai", "aae", "vae"])
def test_forward_runs_in_bf16_while_weights_optimisers_and_evaluation_stay_float32(model):
    run = build_run(tiny_config(model, precision="bfloat16"))
    seen = conv_dtypes(run)
    x, y = run.source.train_batch(0, 0, 16)
    logs = train_step(run, x, y)
    assert seen == [torch.bfloat16]
    assert all(value.dtype == torch.float32 for key, value in logs.items() if key.startswith("loss_"))
    assert {p.dtype for p in [*run.model.parameters(), *run.probe.parameters()]} == {torch.float32}
    for optimizer in run.optimizers.values():
        for state in optimizer.state.values():
            assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.float32
    seen.clear()
    evaluate(run)
    assert seen and set(seen) == {torch.float32}
    float32 = build_run(tiny_config(model, precision="float32"))
    seen = conv_dtypes(float32)
    train_step(float32, x, y)
    assert seen == [torch.float32]


def test_bf16_run_trains_and_its_reconstruction_loss_falls():
    run = build_run(tiny_config("acai", precision="bfloat16", lr=1e-3))
    x_test, _ = run.source.train_batch(99, 0, 64)  # a batch the run never trains on

    def reconstruction() -> float:  # in float32, as evaluation
        with torch.no_grad():
            return mse(run.model.decode(run.model.encode(x_test)), x_test).item()

    before = reconstruction()
    for step in range(60):
        train_step(run, *run.source.train_batch(run.config.seed, step, run.config.batch))
    assert reconstruction() < 0.7 * before


@pytest.mark.filterwarnings("ignore:bfloat16 is not checked")
@pytest.mark.parametrize("model", ["acai", "dropout"])
def test_bf16_resume_is_exact(tmp_path, model):
    whole = train([tiny_config(model, precision="bfloat16")], [tmp_path / "whole"], progress=False)[0]
    train([tiny_config(model, precision="bfloat16", samples=128)], [tmp_path / "parts"], progress=False)[0]  # stops (and saves) half way
    resumed = train([tiny_config(model, precision="bfloat16")], [tmp_path / "parts"], resume=True, progress=False)[0]
    for key in ("mean_distance", "smoothness", "probe_accuracy"):
        assert resumed[key] == pytest.approx(whole[key], rel=0, abs=0, nan_ok=True), key
    a, b = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=False) for name in ("whole", "parts"))
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
    assert torch.equal(a["generator"], b["generator"])
    with pytest.raises(ConfigError, match="different precision"):
        train([tiny_config(model, precision="float32", samples=512)], [tmp_path / "parts"], resume=True, progress=False)[0]


def test_bf16_warns_only_for_models_not_checked(tmp_path):
    with pytest.warns(UserWarning, match="bfloat16 is not checked for baseline"):
        train([tiny_config("baseline", precision="bfloat16", samples=16, eval_every=16)], [tmp_path / "baseline"], progress=False)[0]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        train([tiny_config("acai", precision="bfloat16", samples=16, eval_every=16)], [tmp_path / "acai"], progress=False)[0]
    assert not [w for w in seen if "bfloat16 is not checked" in str(w.message)]


def test_stacked_seeds_refuse_bf16(tmp_path):
    configs = [tiny_config("acai", precision="bfloat16", seed=seed) for seed in (1, 2)]
    with pytest.raises(ConfigError, match="float32 only .autocast does not work under vmap"):
        train(configs, [tmp_path / "s1", tmp_path / "s2"], progress=False)
    assert not (tmp_path / "s1").exists()  # refused before anything was written


def test_cli_precision(tmp_path, capsys):
    common = ["train", "--model", "baseline", "--scales", "2", "--depth", "4", "--latent", "4", "--batch", "16",
              "--samples", "32", "--eval-every", "32", "--quiet"]
    assert main([*common, "--precision", "bfloat16", "--out", str(tmp_path / "run")]) == 0
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert saved["config"]["precision"] == "bfloat16"
    assert main([*common, "--precision", "bfloat16", "--seeds", "2", "--stack", "on", "--out",
                 str(tmp_path / "stack")]) == 2
    assert "float32 only" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse refuses other values (exit code 2)
        main([*common, "--precision", "float16", "--out", str(tmp_path / "other")])
