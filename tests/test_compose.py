"""The ACAI regulariser as a part (acai/core/models/regularizer.py): on every model of the registry and on
a user's own encoder and decoder."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import acai
from acai.cli import main, make_parser
from acai.training.config import ConfigError, TrainConfig
from acai.core.lines import LinesSource
from acai.core.models import COMPOSED, MODELS, NAMES, build, make_hparams
from acai.core.models.acai import critic_loss, fold_alpha
from acai.core.models.regularizer import Regularizer, image_critic
from acai.training.run import build_run, load_run, step_losses, train_step, update_groups
from acai.training.loop import train

from conftest import TINY, kill_midway, tiny_args, tiny_config, tiny_sweep

ROOT = Path(__file__).resolve().parents[1]
BASES = list(COMPOSED.values())  # the six models the regulariser composes with


def draw(model, n, seed):
    return model.draw_noise(n, torch.Generator().manual_seed(seed), torch.device("cpu"), torch.float32)


def test_names_compose_every_model_but_acai():
    assert BASES == [name for name in MODELS if name != "acai"]
    assert set(NAMES) == set(MODELS) | {f"{base}+acai" for base in BASES}
    with pytest.raises(ConfigError, match="acai already is") as error:
        TrainConfig(model="acai+acai")
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="unknown base model 'gan'"):
        TrainConfig(model="gan+acai")
    with pytest.raises(ConfigError, match="unknown model"):
        TrainConfig(model="vae+dropout")


def test_hyper_parameters_are_the_base_s_plus_the_release_s_lam_gamma_and_depth():
    hp = make_hparams("dropout+acai")
    assert dataclasses.asdict(hp) == {"keep": 0.5, "lam": 0.5, "gamma": 0.2, "critic_depth": None}
    hp = make_hparams("vae+acai", {"beta": 2.0, "lam": 0.1, "gamma": 0.3, "critic_depth": 8})
    assert hp.base.beta == 2.0 and (hp.acai.lam, hp.acai.gamma, hp.acai.critic_depth) == (0.1, 0.3, 8)
    with pytest.raises(ConfigError, match="keep must be"):  # the base part validates itself
        make_hparams("dropout+acai", {"keep": 0})
    with pytest.raises(ConfigError, match=r"no hyper-parameter lamda \(it has: noise, lam, gamma, critic_depth\)"):
        make_hparams("denoising+acai", {"lamda": 1})
    model = build("aae+acai", TINY, critic_depth=8, lam=0.25)
    assert model.regularizer.critic[0].out_channels == 8 and model.regularizer.lam == 0.25
    assert build("vae+acai", TINY).regularizer.critic[0].out_channels == TINY.depth  # None: the autoencoder's depth
    # BASE+acai trains on BASE's architecture (the VQ-VAE's d_z 256 on lines).
    assert TrainConfig(model="vqvae+acai").arch(colors=1) == TrainConfig(model="vqvae").arch(colors=1)


@pytest.mark.parametrize("base", BASES)
def test_codes_prior_and_random_codes_are_the_base_s(base):
    # what clustering, `acai samples` and the report read: a missing one failed MNIST table 3 for vae+acai
    composed, alone = build(f"{base}+acai", TINY), build(base, TINY)
    assert (composed.CODES, composed.PRIOR) == (alone.CODES, alone.PRIOR)
    z = composed.random_codes(3, torch.Generator().manual_seed(4))
    assert torch.equal(z, alone.random_codes(3, torch.Generator().manual_seed(4)))


def test_groups_base_s_plus_a_critic_of_its_own_and_group_lr_reaches_it():
    model = build("vae+acai", TINY)
    assert model.GROUPS == {"ae": ("base.encoder", "base.to_mu", "base.to_log_var", "base.decoder"),
                            "critic": ("regularizer",)}
    run = build_run(tiny_config("aae+acai", group_lr={"acai_critic": 2e-4}))  # the AAE's "critic" is its own
    assert list(run.groups) == ["ae", "critic", "acai_critic", "probe"]
    assert run.base_lr["acai_critic"] == pytest.approx(2e-4) and run.base_lr["critic"] == pytest.approx(1e-4)
    assert {id(p) for p in run.groups["acai_critic"]} == {id(p) for p in run.model.regularizer.parameters()}


def test_baseline_plus_acai_is_acai_bit_for_bit(tmp_path):
    """Same parameter creation order, noise draws and operations: equal losses, weights, Adam states."""
    config = tiny_config("acai", samples=512, eval_every=256)
    runs = {name: build_run(dataclasses.replace(config, model=name)) for name in ("acai", "baseline+acai")}
    for step in range(6):
        x, y = runs["acai"].source.train_batch(config.seed, step, config.batch)
        logs = {name: train_step(run, x, y) for name, run in runs.items()}
        assert logs["acai"].keys() == logs["baseline+acai"].keys()
        for key, value in logs["acai"].items():
            assert torch.equal(value, logs["baseline+acai"][key]), key
    for group in ("ae", "critic", "probe"):
        for a, b in zip(runs["acai"].groups[group], runs["baseline+acai"].groups[group], strict=True):
            assert torch.equal(a, b)
            assert all(torch.equal(u, v) for u, v in zip(runs["acai"].optimizers[group].state[a].values(),
                                                         runs["baseline+acai"].optimizers[group].state[b].values()))
    whole = {name: train([dataclasses.replace(config, model=name)], [tmp_path / name], progress=False)[0]
             for name in runs}
    for key in ("mean_distance", "smoothness", "probe_accuracy"):
        assert whole["baseline+acai"][key] == pytest.approx(whole["acai"][key], rel=0, abs=0, nan_ok=True), key


def step_with(run, x, y, noise):
    """train_step with the given noise instead of the run's own draws."""
    losses, out = step_losses(run.model, run.probe, x, y, noise)
    update_groups(losses, run.groups, run.optimizers)
    with torch.no_grad():
        for name, value in out.buffers.items():
            run.model.get_buffer(name).copy_(value)
    return {f"loss_{k}": v.detach() for k, v in losses.items()}


@pytest.mark.parametrize("base", BASES)
def test_lambda_zero_leaves_the_base_models_autoencoder_update_unchanged(base):
    """From the same initial weights and noise, BASE+acai with λ = 0 takes BASE's own step.

    To float tolerance, not bit for bit: the composed model decodes the mixtures in the same
    decoder pass (a batch of 2B), whose kernels may sum in another order than for B."""
    plain = build_run(tiny_config(base))
    composed = build_run(tiny_config(f"{base}+acai", hparams={**tiny_config(base).hparams, "lam": 0.0}))
    for a, b in zip(plain.model.state_dict().values(), composed.model.base.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the base is built first: the same weights under the same seed
    groups = [g for g in plain.groups if g != "probe"]  # the probe is made after the critic: another init
    alphas = torch.Generator().manual_seed(5)
    for step in range(3):
        x, y = plain.source.train_batch(0, step, 16)
        noise = plain.model.draw_noise(16, plain.generator, plain.device, x.dtype)  # the same draws for both
        plain_logs = step_with(plain, x, y, noise)
        composed_logs = step_with(composed, x, y, {**noise, "alpha": torch.rand(16, 1, 1, 1, generator=alphas)})
        for group in groups:
            torch.testing.assert_close(composed_logs[f"loss_{group}"], plain_logs[f"loss_{group}"], rtol=1e-6, atol=0)
            for p, q in zip(plain.groups[group], composed.groups[group], strict=True):
                torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-6)  # 2 threads: ~1e-6 apart
                torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-7)
    for name, value in plain.model.named_buffers():  # the VQ-VAE's codebook: only the batch's own vectors
        torch.testing.assert_close(composed.model.base.get_buffer(name), value, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("base", BASES)
def test_the_critic_never_updates_the_autoencoder_and_vice_versa(base):
    run = build_run(tiny_config(f"{base}+acai"))
    critic_group = run.model.critic_group
    x, y = run.source.train_batch(0, 0, 16)
    state = run.generator.get_state()
    out = run.model.training_losses(x, run.model.draw_noise(16, run.generator, run.device, x.dtype))
    own = {g: torch.autograd.grad(out.losses[g], run.groups[g], retain_graph=True, allow_unused=True)
           for g in out.losses}
    # Each loss does reach the other's weights: eq. 2's term the critic's, eq. 1 the autoencoder's ...
    leak_to_critic = torch.autograd.grad(out.losses["ae"], run.groups[critic_group], retain_graph=True)
    leak_to_ae = torch.autograd.grad(out.losses[critic_group], run.groups["ae"], retain_graph=True,
                                     allow_unused=True)
    assert any(g.abs().sum() > 0 for g in leak_to_critic)
    assert any(g is not None and g.abs().sum() > 0 for g in leak_to_ae)
    # ... and the trainer applies to each group the gradient of its own loss only.
    run.generator.set_state(state)
    train_step(run, x, y)
    for group, grads in own.items():
        for p, g in zip(run.groups[group], grads, strict=True):
            if g is None:
                assert p.grad is None
            else:
                torch.testing.assert_close(p.grad, g)
    ae, critic = ({id(p) for p in run.groups[g]} for g in ("ae", critic_group))
    assert not ae & critic and critic == {id(p) for p in run.model.regularizer.parameters()}


@pytest.mark.parametrize("base", BASES)
def test_mixtures_are_what_the_base_interpolates(base):
    """The critic judges decode(α·code + (1-α)·code'), code what encode(x) gives at evaluation."""
    model = build(f"{base}+acai", TINY, **tiny_config(base).hparams)
    x = LinesSource().train_batch(0, 0, 6)[0]
    noise = draw(model, 6, 3)
    alpha = fold_alpha(noise["alpha"])
    own = {k: v for k, v in noise.items() if k != "alpha"}
    step = model.base.training_pass(x, own, mix=lambda z: Regularizer.mix(z, alpha))
    if base == "vae":  # the sampled code of this step's ε (the release interpolates samples)
        _, mu, log_var = model.base.posterior(x)
        code = model.base.sample(mu, log_var, own["eps"])
    else:
        code = model.encode(x)
    torch.testing.assert_close(step.code, code)
    torch.testing.assert_close(step.mixed, model.decode(alpha * code + (1 - alpha) * code.flip(0)), rtol=1e-4,
                               atol=1e-5)
    plain = model.base.training_losses(x, own)  # the base's own losses are unchanged by `mix`
    for name, loss in plain.losses.items():
        torch.testing.assert_close(step.out.losses[name], loss, rtol=1e-5, atol=1e-6)
    out = model.training_losses(x, noise)
    d_mix, d_blend = (model.regularizer.critique(images) for images in
                      (step.mixed, 0.2 * x + 0.8 * step.reconstruction))
    torch.testing.assert_close(out.losses[model.critic_group], critic_loss(d_mix, alpha.flatten(), d_blend))
    torch.testing.assert_close(out.losses["ae"], plain.losses["ae"] + 0.5 * d_mix.pow(2).mean(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["vae+acai", "vqvae+acai"])
def test_killed_composed_run_resumes_to_the_plain_run(tmp_path, model):
    config = tiny_config(model, samples=512)
    whole = train([config], [tmp_path / "whole"], progress=False)[0]
    kill_midway(config, tmp_path / "killed")  # dies on its way to the third evaluation
    resumed = train([config], [tmp_path / "killed"], resume=True, progress=False)[0]
    for key in ("mean_distance", "smoothness", "probe_accuracy"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-6, abs=1e-9, nan_ok=True), key
    a, b = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=False) for name in ("whole", "killed"))
    for name, value in a["model"].items():
        assert torch.equal(b["model"][name], value), name
    assert torch.equal(a["generator"], b["generator"])


@pytest.mark.parametrize("model", ["denoising+acai", "aae+acai", "vqvae+acai"])
def test_stacked_composed_seeds_train_as_plain_runs(tmp_path, model):
    configs = [tiny_config(model, samples=128, seed=seed) for seed in (1, 2)]
    alone = [train([c], [tmp_path / f"alone{c.seed}"], progress=False)[0] for c in configs]
    outs = [tmp_path / "stack" / f"seed{c.seed}" for c in configs]
    stacked = train(configs, outs, progress=False)
    for a, b, config, out in zip(alone, stacked, configs, outs):
        for key in ("mean_distance", "smoothness", "probe_accuracy"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6, nan_ok=True), key
        saved = torch.load(tmp_path / f"alone{config.seed}" / "checkpoint.pt", weights_only=False)
        mine = torch.load(out / "checkpoint.pt", weights_only=False)
        for part in ("model", "probe"):
            for name, value in saved[part].items():
                torch.testing.assert_close(mine[part][name], value, rtol=1e-4, atol=1e-5, msg=f"{part}.{name}")


def test_cli_trains_a_composed_model_with_its_hyper_parameters(tmp_path, capsys):
    out = tmp_path / "run"
    args = tiny_args("vae+acai", samples=64, eval_every=64)
    assert main(["train", "--model", "vae+acai", "--hp", "lam=0.3", "--hp", "critic_depth=8", "--hp", "beta=0.5",
                 "--out", str(out), *args]) == 0
    assert "mean_distance=" in capsys.readouterr().out
    run = load_run(out)
    assert run.config.model == "vae+acai" and run.model.hp.lam == 0.3 and run.model.base.hp.beta == 0.5
    assert run.model.regularizer.critic[0].out_channels == 8
    assert main(["interpolate", str(out), "--out", str(tmp_path / "grid.png"), "--pairs", "2", "--steps", "3"]) == 0
    assert main(["train", "--model", "vae+acai", "--hp", "lamda=1", "--out", str(tmp_path / "b"), *args]) == 2
    assert "no hyper-parameter lamda" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # argparse: not a model name
        make_parser().parse_args(["train", "--model", "acai+acai", "--out", str(tmp_path / "c")])
    assert exit_.value.code == 2


def test_reproduce_table1_with_composed_models(tmp_path):
    from acai.reproduce.sweep import reproduce

    parsed = make_parser().parse_args(["reproduce", "table1", "--models", "baseline", "baseline+acai"])
    assert parsed.models == ["baseline", "baseline+acai"]
    spec = tiny_sweep("table1", tmp_path, models=("baseline", "baseline+acai"), seeds=2,
                      overrides=dict(samples=64, eval_every=32))
    reproduce(spec, progress=False)
    rows = json.loads((tmp_path / "table1.json").read_text())
    assert [r["model"] for r in rows] == ["baseline", "baseline+acai"] and rows[1]["seeds"] == 2
    assert "paper_mean_distance" in rows[0] and "paper_mean_distance" not in rows[1]
    table = (tmp_path / "table1.md").read_text()
    assert "| baseline+acai |" in table and "— |" in table  # no paper numbers for a composed model
    assert "With and without the ACAI regulariser" in table
    pair = next(line for line in table.splitlines() if line.startswith("| lines | 64 | baseline |") and "→" in line)
    assert pair.count("|") == 9  # data, d_z, base; 2 measures without and with; samples/s
    assert (tmp_path / "runs" / "lines-dz64" / "baseline+acai" / "seed1" / "metrics.json").exists()


def test_the_baseline_pairs_with_acai_in_the_with_and_without_table(tmp_path):
    """`acai` is `baseline+acai`, so Table 1 of the paper's models already holds the baseline's pair."""
    from acai.reproduce.sweep import reproduce

    spec = tiny_sweep("table1", tmp_path, models=("baseline", "vae", "acai"), seeds=1,
                      overrides=dict(samples=64, eval_every=32))
    table = reproduce(spec, progress=False)
    pairs = [line for line in table.splitlines() if line.startswith("| lines") and "→" in line]
    assert len(pairs) == 1 and pairs[0].startswith("| lines | 64 | baseline (with ACAI: acai) |")


def test_mnist_tables_2_and_3_with_composed_models(tmp_path):
    """The MNIST half of the measurement: probe on final codes and K-Means, BASE beside BASE+acai."""
    from acai.reproduce.sweep import reproduce

    mnist = ROOT.parent / "shared" / "data" / "mnist"
    if not mnist.exists():
        pytest.skip(f"the real MNIST is expected at {mnist}")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist").symlink_to(mnist, target_is_directory=True)
    common = dict(datasets=("mnist",), models=("vae", "vae+acai"), data_dir=str(tmp_path / "data"), lines=False)
    out = tmp_path / "real"
    table2 = reproduce(tiny_sweep("table2", out, probe_samples=64 * 20, **common), progress=False)
    table3 = reproduce(tiny_sweep("table3", out, restarts=2, **common), progress=False)
    for table in (table2, table3):
        assert "| mnist | 32 | vae+acai |" in table and "With and without the ACAI regulariser" in table
    assert "Probe on final codes (%): with ACAI" in table2 and "K-Means (%): with ACAI" in table3
    rows = json.loads((out / "table3.json").read_text())
    assert [r["model"] for r in rows] == ["vae", "vae+acai"] and all(0 <= r["cluster_accuracy"] <= 100 for r in rows)


# --- On your own model -------------------------------------------------------------------------------

def own_autoencoder(code=8):
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 20, 32), nn.ReLU(), nn.Linear(32, code))
    decoder = nn.Sequential(nn.Linear(code, 3 * 12 * 20), nn.Tanh(), nn.Unflatten(1, (3, 12, 20)))
    return encoder, decoder


def test_regularize_your_own_encoder_and_decoder():
    torch.manual_seed(0)
    encoder, decoder = own_autoencoder()
    model = acai.regularize(encoder, decoder, image_shape=(3, 12, 20), lam=0.4, gamma=0.3)
    assert model.critic(torch.zeros(2, 3, 12, 20)).shape[:2] == (2, 16)  # built for this shape
    x = torch.rand(6, 3, 12, 20) * 2 - 1
    u = torch.rand(6, generator=torch.Generator().manual_seed(1))
    out = model(x, u)
    alpha = fold_alpha(u)
    code = encoder(x)
    torch.testing.assert_close(out.reconstruction, decoder(code))
    mixed = decoder(alpha[:, None] * code + (1 - alpha[:, None]) * code.flip(0))
    torch.testing.assert_close(out.mixed, mixed)
    d = lambda images: model.critic(images).mean(dim=(1, 2, 3))
    torch.testing.assert_close(out.ae_term, 0.4 * d(mixed).pow(2).mean())
    torch.testing.assert_close(out.critic_loss, (d(mixed) - alpha).pow(2).mean()
                               + d(0.3 * x + 0.7 * decoder(code)).pow(2).mean())
    # backward: the autoencoder's gradient from its loss only, the critic's from eq. 1 only.
    ae_loss = (out.reconstruction - x).pow(2).mean() + out.ae_term
    ae_params, critic_params = model.autoencoder_parameters(), list(model.critic.parameters())
    expected_ae = torch.autograd.grad(ae_loss, ae_params, retain_graph=True)
    expected_critic = torch.autograd.grad(out.critic_loss, critic_params, retain_graph=True)
    model.backward(ae_loss, out.critic_loss)
    for params, grads in ((ae_params, expected_ae), (critic_params, expected_critic)):
        for p, g in zip(params, grads, strict=True):
            torch.testing.assert_close(p.grad, g)
    assert len(ae_params) + len(critic_params) == len(list(model.parameters()))


def test_regularize_takes_your_own_critic_and_refuses_non_image_shapes():
    encoder, decoder = own_autoencoder()
    critic = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 20, 1))
    model = acai.regularize(encoder, decoder, (3, 12, 20), critic=critic)
    assert model.critic is critic
    out = model(torch.zeros(4, 3, 12, 20), torch.rand(4))
    assert out.ae_term.shape == () and out.critic_loss.shape == ()
    with pytest.raises(ValueError, match="channels, height, width"):
        image_critic((720,))
    assert image_critic((1, 32, 32))[-1].out_channels == 16 and len([m for m in image_critic((1, 32, 32))
                                                                     if isinstance(m, nn.AvgPool2d)]) == 4


def test_the_example_trains_a_model_defined_in_the_script():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "own_model.py"), "--steps", "20",
                             "--batch", "16"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "step   20: reconstruction" in result.stdout and "Mean Distance" in result.stdout


def test_the_readme_example_runs():
    readme = (ROOT / "README.md").read_text()
    block = next(b.split("\n", 1)[1] for b in readme.split("```python")[1:] if "acai.regularize(" in b.split("```")[0])
    code = block.split("```")[0]
    assert 12 <= len(code.strip().splitlines()) <= 18 and "range(400)" in code
    torch.manual_seed(0)
    namespace = {}
    exec(compile(code.replace("range(400)", "range(2)"), "README.md", "exec"), namespace)
    assert namespace["out"].critic_loss.isfinite() and namespace["model"].critic[0].in_channels == 1
