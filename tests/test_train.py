"""The training loop: losses per group, evaluation protocol, checkpoints and resume."""
import json
import math

import numpy as np
import pytest
import torch

from acai.training.config import ConfigError, TrainConfig
import acai.training.run as run_module
from acai.training.run import build_run, train_step
from acai.training.run_folder import summarise
from acai.training.loop import train

from conftest import kill_midway, tiny_config


def test_each_group_is_updated_only_by_its_own_loss():
    run = build_run(tiny_config("acai", samples=512, eval_pairs=16))
    x, y = run.source.train_batch(0, 0, 16)
    state = run.generator.get_state()  # the same α draw for the hand computation and the trainer
    out = run.model.training_losses(x, run.model.draw_noise(16, run.generator, run.device, x.dtype))
    g_ae = torch.autograd.grad(out.losses["ae"], run.groups["ae"], retain_graph=True)
    g_critic = torch.autograd.grad(out.losses["critic"], run.groups["critic"], retain_graph=True)
    # The autoencoder's λ·d(x̂_α)² term does reach the critic's weights; it must not be applied there.
    leaked = torch.autograd.grad(out.losses["ae"], run.groups["critic"], allow_unused=True)
    assert any(g is not None and g.abs().max() > 0 for g in leaked)
    run.generator.set_state(state)
    train_step(run, x, y)
    for params, grads in ((run.groups["ae"], g_ae), (run.groups["critic"], g_critic)):
        for p, g in zip(params, grads):
            torch.testing.assert_close(p.grad, g)


def test_probe_reads_stopped_gradient_features():
    run = build_run(tiny_config("baseline", samples=512, eval_pairs=16))
    x, y = run.source.train_batch(0, 0, 16)
    encoder_before = [p.detach().clone() for p in run.model.encoder.parameters()]
    run.base_lr["ae"] = 0.0  # only the probe may move now
    train_step(run, x, y)
    for before, p in zip(encoder_before, run.model.encoder.parameters()):
        torch.testing.assert_close(before, p.detach())
    assert run.probe.weight.grad.abs().sum() > 0


def test_train_writes_metrics_log_and_checkpoint(tmp_path):
    metrics = train([tiny_config("baseline", samples=512, eval_pairs=16)], [tmp_path / "run"], progress=False)[0]
    for key in ("mean_distance", "smoothness", "probe_accuracy", "samples", "seconds"):
        assert key in metrics
    assert metrics["samples"] == 512 and metrics["evaluations"] == 4
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [entry["samples"] for entry in log] == [128, 256, 384, 512]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["config"]["model"] == "baseline"
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]  # no temp files left


def test_same_seed_same_run(tmp_path):
    a = train([tiny_config("vae", samples=256, eval_pairs=16)], [tmp_path / "a"], progress=False)[0]
    b = train([tiny_config("vae", samples=256, eval_pairs=16)], [tmp_path / "b"], progress=False)[0]
    c = train([tiny_config("vae", samples=256, eval_pairs=16, seed=2)], [tmp_path / "c"], progress=False)[0]
    assert a["mean_distance"] == b["mean_distance"] and a["probe_accuracy"] == b["probe_accuracy"]
    assert a["mean_distance"] != c["mean_distance"]


@pytest.mark.parametrize("model", ["acai", "vqvae", "dropout"])
def test_killed_run_resumes_to_identical_metrics(tmp_path, model):
    config = tiny_config(model, samples=512, eval_pairs=16)
    whole = train([config], [tmp_path / "whole"], progress=False)[0]
    kill_midway(config, tmp_path / "killed")  # dies on its way to the third evaluation
    assert len((tmp_path / "killed" / "log.jsonl").read_text().splitlines()) == 2
    with pytest.raises(ConfigError, match="--resume"):
        train([config], [tmp_path / "killed"], progress=False)[0]
    resumed = train([config], [tmp_path / "killed"], resume=True, progress=False)[0]
    for key in ("mean_distance", "smoothness", "probe_accuracy"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-6, abs=1e-9, nan_ok=True), key
    assert resumed["samples"] == whole["samples"]


def test_resume_refuses_other_settings(tmp_path):
    train([tiny_config("baseline", samples=128, eval_pairs=16)], [tmp_path / "run"], progress=False)[0]
    with pytest.raises(ConfigError, match="different lr"):
        train([tiny_config("baseline", samples=256, eval_pairs=16, lr=1e-3)], [tmp_path / "run"], resume=True, progress=False)[0]
    longer = train([tiny_config("baseline", samples=256, eval_pairs=16)], [tmp_path / "run"], resume=True, progress=False)[0]
    assert longer["samples"] == 256  # a larger budget continues the same run


def test_reported_value_is_median_of_last_window():
    history = [{"mean_distance": float(v), "smoothness": math.nan if v == 3 else v / 10} for v in range(30)]
    summary = summarise(history, 20)
    assert summary["mean_distance"] == np.median(np.arange(10, 30))
    assert summary["smoothness"] == pytest.approx(np.median(np.arange(10, 30)) / 10)
    assert summarise(history[:3], 20)["mean_distance"] == 1.0  # fewer evaluations than the window
    assert math.isnan(summarise([{"smoothness": math.nan}], 20)["smoothness"])


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="unknown configuration key"):
        TrainConfig.from_dict({"modle": "acai"})
    with pytest.raises(ConfigError, match="samples must be positive"):
        TrainConfig(samples=0)
    with pytest.raises(ConfigError, match="not a multiple"):
        TrainConfig(data="mnist", dz=33).arch(colors=1)
    assert TrainConfig(data="mnist", dz=256).arch(colors=1).latent == 16
    assert TrainConfig(data="lines", model="vqvae").arch(colors=1).dz == 256
    assert TrainConfig(data="lines").arch(colors=1).dz == 64


def test_lr_schedule_warms_up_then_decays_to_zero():
    from acai.training.run import lr_factor

    paper = tiny_config("baseline", samples=512, eval_pairs=16)
    assert all(lr_factor(paper, step) == 1.0 for step in range(paper.steps))  # the paper: constant
    short = tiny_config("baseline", samples=512, eval_pairs=16, lr_warmup=64, lr_decay="cosine")  # batch 16: warm-up over 4 steps
    factors = [lr_factor(short, step) for step in range(short.steps)]
    assert factors[:4] == pytest.approx([0.25 * 0.5 * (1 + math.cos(math.pi * s / short.steps)) * (s + 1)
                                         for s in range(4)])
    assert max(factors) <= 1 and factors[-1] < 0.01 and all(a >= b for a, b in zip(factors[4:], factors[5:]))


def test_a_run_shorter_than_its_schedule_is_the_first_part_of_the_longer_run():
    """The quick preset stops its lines runs part of the way down the cosine (lr_decay_over): every
    update must be the longer run's, and the rate must not reach 0."""
    from acai.training.run import lr_factor
    from acai.training.loop import SingleStepper

    whole = tiny_config("baseline", samples=256, eval_pairs=16, lr=1e-3, lr_warmup=32, lr_decay="cosine")  # batch 16: 16 steps
    part = tiny_config("baseline", samples=128, eval_pairs=16, lr=1e-3, lr_warmup=32, lr_decay="cosine", lr_decay_over=256)
    assert [lr_factor(part, s) for s in range(part.steps)] == [lr_factor(whole, s) for s in range(part.steps)]
    assert lr_factor(part, part.steps - 1) > 0.4  # halfway down, not at 0 as its own cosine would be
    steppers = [SingleStepper(build_run(config)) for config in (whole, part)]
    for _ in range(part.steps):
        for stepper in steppers:
            stepper.step()
    for a, b in zip(*(stepper.runs[0].model.parameters() for stepper in steppers)):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="lr_decay_over=64 is below samples=256"):
        tiny_config("baseline", samples=256, eval_pairs=16, lr_decay="cosine", lr_decay_over=64)
    with pytest.raises(ConfigError, match="needs lr_decay=cosine"):
        tiny_config("baseline", samples=512, eval_pairs=16, lr_decay_over=512)


def test_group_lr_sets_one_groups_rate():
    run = build_run(tiny_config("acai", samples=512, eval_pairs=16, lr=1e-3, group_lr={"critic": 1e-4}))
    assert run.base_lr == {"ae": 1e-3, "critic": 1e-4, "probe": 1e-3}
    aae = build_run(tiny_config("aae", samples=512, eval_pairs=16, lr=1e-3))
    assert aae.base_lr["critic"] == 1e-4  # the AAE's own critic rate (release `adversary_lr`) stays
    with pytest.raises(ConfigError, match="group_lr names discriminator"):
        build_run(tiny_config("acai", samples=512, eval_pairs=16, group_lr={"discriminator": 1e-4}))
    with pytest.raises(ConfigError, match="lr must be a finite number > 0"):
        tiny_config("acai", samples=512, eval_pairs=16, lr=float("inf"))


def test_a_decaying_schedule_cannot_be_resumed_to_a_larger_budget(tmp_path):
    config = tiny_config("baseline", samples=128, eval_pairs=16, lr_decay="cosine")
    train([config], [tmp_path / "run"], progress=False)[0]
    with pytest.raises(ConfigError, match="different samples"):
        train([tiny_config("baseline", samples=256, eval_pairs=16, lr_decay="cosine")], [tmp_path / "run"], resume=True, progress=False)[0]


def test_an_evaluation_names_the_models_state():
    from acai.core.evaluations import lines_state, mean_image_distance

    assert 0.029 < mean_image_distance() < 0.030  # the blurred disc every model draws first
    assert lines_state(0.004, 0.12) == "ok"
    assert lines_state(0.030, math.nan) == "mean image"  # the blurred disc for every code
    assert lines_state(0.030, 0.08) == "mean image"  # a defined smoothness of blobs is no line's
    assert lines_state(0.010, math.nan) == "constant"  # one line for every code: smoothness undefined
    assert lines_state(0.9, 0.5) == "collapsed"  # nothing near any line
    assert lines_state(math.nan, math.nan) == "diverged"
    run = build_run(tiny_config("baseline", samples=512, eval_pairs=16))
    with torch.no_grad():  # a decoder that paints every pixel white: far from every line
        last = run.model.decoder[-1]
        last.weight.zero_()
        last.bias.fill_(1.0)
    result = run_module.evaluate(run)
    assert result["state"] == "collapsed" and result["mean_distance"] > 0.5


def test_one_undefined_evaluation_in_the_window_makes_the_reported_value_undefined():
    # The release's figures.ipynb takes np.median of the last 20 evaluations: a NaN among them gives NaN
    # (np.nanmedian would leave it out and report 0.25 here).
    history = [{"mean_distance": 0.01, "smoothness": s} for s in (math.nan, 0.2, 0.3, math.nan, 0.25)]
    assert math.isnan(summarise(history, 3)["smoothness"])
    assert summarise(history, 3)["mean_distance"] == 0.01
    assert summarise(history, 1)["smoothness"] == 0.25  # the NaN is outside the window
    assert summarise(history[1:3], 20)["smoothness"] == pytest.approx(0.25)


def test_progress_evaluations_are_lighter_and_leave_the_reported_values_alone(tmp_path):
    # 512 samples, an evaluation every 128: four evaluations, the last two reported (eval_window 2).
    whole = train([tiny_config("baseline", samples=512, eval_pairs=16, eval_window=2)], [tmp_path / "whole"], progress=False)[0]
    light = train([tiny_config("baseline", samples=512, eval_pairs=16, eval_window=2, progress_pairs=4)], [tmp_path / "light"], progress=False)[0]
    log = [json.loads(line) for line in (tmp_path / "light" / "log.jsonl").read_text().splitlines()]
    assert ["probe_accuracy" in entry for entry in log] == [False, False, True, True]
    assert [entry["pairs"] for entry in log] == [4, 4, 16, 16]  # tiny(): eval_pairs 16
    assert all("mean_distance" in entry for entry in log)  # the curves keep every point
    for key in ("mean_distance", "smoothness", "probe_accuracy"):
        assert light[key] == whole[key], key


def test_evaluations_counts_the_last_partial_interval():
    assert tiny_config("baseline", samples=512, eval_pairs=16).evaluations == 4  # 32 steps, every 8
    assert tiny_config("baseline", samples=528, eval_pairs=16).evaluations == 5  # 33 steps: the last one evaluates too
    config = tiny_config("baseline", samples=528, eval_pairs=16, eval_window=2, progress_pairs=4)
    assert [config.evaluation_pairs(i) for i in range(5)] == [4, 4, 4, 16, 16]
    assert all(tiny_config("baseline", samples=512, eval_pairs=16).whole_evaluation(i) for i in range(4))  # no progress_pairs: all whole


def test_adam_multi_tensor_step_equals_the_per_tensor_one():
    # run.adam uses torch's foreach kernels on the CPU for speed; a different rounding there would make
    # today's runs differ from those of the per-tensor loop that trained the README's numbers.
    run = build_run(tiny_config("acai", samples=512, eval_pairs=16))
    x, y = run.source.train_batch(0, 0, 16)
    twin = build_run(tiny_config("acai", samples=512, eval_pairs=16))
    twin.optimizers = {name: torch.optim.Adam(twin.groups[name], lr=run.base_lr[name], foreach=False)
                       for name in twin.groups}
    for step in range(3):
        train_step(run, x, y)
        train_step(twin, x, y)
    for name in run.groups:
        for a, b in zip(run.groups[name], twin.groups[name]):
            assert torch.equal(a, b), name


def test_initial_weights_come_from_the_runs_own_generator():
    """The seed alone fixes a run's weights: not what the process drew before, and building a run draws
    nothing from torch's global generator."""
    config = tiny_config("vqvae+acai")
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = build_run(config)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator was not drawn from
    torch.rand(1000)  # whatever else ran in the process
    second = build_run(config)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(first.probe.weight, second.probe.weight)
    other = build_run(tiny_config("vqvae+acai", seed=2))
    assert not torch.equal(other.model.base.encoder[0].weight, first.model.base.encoder[0].weight)


def test_adam_steps_as_tensorflows_adam_optimizer():
    """The release's tf.train.AdamOptimizer (ε = 1e-8, added to √v before the bias correction):
    θ -= lr·√(1-β2ᵗ)/(1-β1ᵗ) · m/(√v + ε), written out in float64 and compared over 40 steps. Tiny
    gradients (1e-7) make ε matter: torch's own placement differs there by several percent."""
    from acai.training.run import adam, set_schedule

    config = tiny_config("baseline", lr=1e-3)
    grads = torch.Generator().manual_seed(3)
    theta = torch.nn.Parameter(torch.randn(200, dtype=torch.float64, generator=grads))
    untouched = torch.nn.Parameter(theta.detach().clone())  # torch's default ε placement
    ours, torchs = adam([theta], config.lr), torch.optim.Adam([untouched], lr=config.lr, eps=1e-8)
    expected, m, v = theta.detach().clone(), torch.zeros(200, dtype=torch.float64), torch.zeros(200, dtype=torch.float64)
    for step in range(40):
        g = 1e-7 * torch.randn(200, dtype=torch.float64, generator=grads)
        m, v, t = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g, step + 1
        expected -= config.lr * math.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (v.sqrt() + 1e-8)
        set_schedule({"ae": ours}, {"ae": config.lr}, config, step)
        theta.grad, untouched.grad = g.clone(), g.clone()
        ours.step()
        torchs.step()
    assert torch.allclose(theta.detach(), expected, rtol=0, atol=1e-12)
    assert not torch.allclose(untouched.detach(), expected, rtol=0, atol=1e-6)  # the placement matters here


def test_he_init_keeps_the_signal_that_the_release_init_loses():
    """The release's conv init halves the variance at every layer: at init every line decodes to almost
    the same image. `init="he"` is the same draws times √2 and keeps the decoded images apart."""
    spreads = {}
    for init in ("release", "he"):
        run = build_run(TrainConfig(model="baseline", init=init, seed=0))
        x, _ = run.source.train_batch(0, 0, 64)
        with torch.no_grad():
            spreads[init] = run.model.decode(run.model.encode(x)).std(0).mean().item()  # across the batch
        if init == "he":
            release = build_run(TrainConfig(model="baseline", seed=0)).model
            for (name, a), b in zip(run.model.named_parameters(), release.parameters()):
                scale = math.sqrt(2) if a.dim() == 4 else 1.0  # conv weights only; biases are 0
                assert torch.allclose(a, b * scale), name
    assert spreads["release"] < 1e-5 and spreads["he"] > 100 * spreads["release"]
