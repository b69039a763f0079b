"""Seeds in parallel: K stacked members must train exactly as K separate runs (to float tolerance)."""
import json

import pytest
import torch

from acai.cli import main
from acai.training.config import ConfigError
from acai.core.models import MODELS
from acai.training.stacked import next_batch, stack_runs, stacked_step
from acai.training.run import build_run, load_run, train_step
from acai.training.loop import Hooks, train

from conftest import tiny_args, tiny_config, tiny_sweep

METRICS = ("mean_distance", "smoothness", "probe_accuracy")


def same_metrics(a: dict, b: dict) -> None:
    for key in METRICS:
        assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6, nan_ok=True), key


def same_weights(a, b) -> None:
    for part in ("model", "probe"):
        for name, value in a[part].items():
            torch.testing.assert_close(b[part][name], value, rtol=1e-4, atol=1e-5, msg=f"{part}.{name}")


@pytest.mark.parametrize("model,hparams", [(model, None) for model in MODELS]  # and the short recipe's VQ-VAE codebook
                         + [("vqvae", dict(codebook_log2=8, codebook_from_data=True))])
def test_stacked_seeds_train_as_separate_runs(tmp_path, model, hparams):
    configs = [tiny_config(model, samples=128, seed=seed, **({"hparams": hparams} if hparams else {}))
               for seed in (1, 2)]
    # The first steps' losses, member by member.
    alone = [build_run(c) for c in configs]
    stack = stack_runs([build_run(c) for c in configs])
    for _ in range(3):
        batches = [run.source.train_batch(run.config.seed, run.step, run.config.batch) for run in alone]
        separate = [train_step(run, x, y) for run, (x, y) in zip(alone, batches)]
        together = stacked_step(stack, *next_batch(stack.members))
        for run in alone + stack.members:
            run.step += 1
        for k, logs in enumerate(separate):
            for key, value in logs.items():
                torch.testing.assert_close(together[key][k], value, rtol=1e-5, atol=1e-6, msg=key)
    # Whole runs: the same reported metrics, weights and noise stream, in the same files.
    whole = [train([c], [tmp_path / f"alone{c.seed}"], progress=False)[0] for c in configs]
    outs = [tmp_path / "stack" / f"seed{c.seed}" for c in configs]
    for a, b, out, config in zip(whole, train(configs, outs, progress=False), outs, configs):
        same_metrics(a, b)
        assert b["samples"] == a["samples"] and b["config"] == a["config"]
        saved = torch.load(tmp_path / f"alone{config.seed}" / "checkpoint.pt", weights_only=False)
        mine = torch.load(out / "checkpoint.pt", weights_only=False)
        same_weights(saved, mine)
        assert torch.equal(saved["generator"], mine["generator"]) and mine["step"] == saved["step"]
        assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "clock.jsonl", "log.jsonl", "metrics.json"]


def test_killed_stacked_run_resumes_to_the_same_result(tmp_path):
    configs = [tiny_config("acai", samples=192, seed=seed, eval_every=64) for seed in (1, 2)]
    whole = train(configs, [tmp_path / "whole" / f"s{c.seed}" for c in configs], progress=False)
    outs = [tmp_path / "killed" / f"s{c.seed}" for c in configs]
    saved = []

    def die(out):  # killed between the two members' second checkpoints
        saved.append(out)
        if len(saved) == 3:
            raise SystemExit("killed")

    with pytest.raises(SystemExit):
        train(configs, outs, progress=False, hooks=Hooks(after_checkpoint=die))
    assert [load_run(out).step for out in outs] == [8, 4]  # the second member has to catch up alone
    with pytest.raises(ConfigError, match="--resume"):
        train(configs, outs, progress=False)
    for a, b in zip(whole, train(configs, outs, resume=True, progress=False)):
        same_metrics(a, b)
        assert b["evaluations"] == a["evaluations"] == 3


def test_stacked_configs_must_differ_only_in_seed(tmp_path):
    with pytest.raises(ConfigError, match="lr differ"):
        train([tiny_config("baseline", samples=128, seed=1), tiny_config("baseline", samples=128, seed=2, lr=1e-3)], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ConfigError, match="distinct seeds"):
        train([tiny_config("baseline", samples=128, seed=1), tiny_config("baseline", samples=128, seed=1)], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ConfigError, match="one output folder per config"):
        train([tiny_config("baseline", samples=128, seed=1)], [tmp_path / "a", tmp_path / "b"])


@pytest.mark.parametrize("stack", ["on", "off"])
def test_cli_seeds_trains_one_folder_per_seed(tmp_path, capsys, stack):
    args = tiny_args("dropout", samples=64, eval_every=64, seed=3)
    assert main(["train", "--model", "dropout", "--seeds", "2", "--stack", stack, "--out", str(tmp_path), *args]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and printed[0].startswith("seed 3:") and printed[1].startswith("seed 4:")
    for seed in (3, 4):
        assert json.loads((tmp_path / f"seed{seed}" / "metrics.json").read_text())["seed"] == seed
        assert load_run(tmp_path / f"seed{seed}").config.seed == seed
    png = tmp_path / "grid.png"
    assert main(["interpolate", str(tmp_path / "seed4"), "--out", str(png), "--pairs", "2", "--steps", "3"]) == 0


def test_reproduce_trains_seeds_stacked_with_the_same_table(tmp_path):
    from acai.reproduce.sweep import reproduce

    settings = dict(samples=64, eval_every=32, eval_window=1)
    tables = {}
    for stack in ("off", "on"):
        reproduce(tiny_sweep("table1", tmp_path / stack, seeds=2, models=("acai",), overrides=settings,
                             stack=stack, precision="float32"), progress=False)
        tables[stack] = json.loads((tmp_path / stack / "table1.json").read_text())
    for key in ("mean_distance", "mean_distance_std", "smoothness"):
        assert tables["on"][0][key] == pytest.approx(tables["off"][0][key], rel=1e-4, nan_ok=True)
    assert tables["on"][0]["seeds"] == 2


def cli_groups(monkeypatch, tmp_path, model: str, device: str, seeds: int, stack: str) -> list[int]:
    """How `acai train --seeds` hands its seeds to the loop: the size of each `train` call."""
    import acai.training.loop as loop

    calls = []
    monkeypatch.setattr(loop, "train", lambda configs, outs, **_: calls.append(len(configs)) or
                        [{"seed": c.seed} for c in configs])
    argv = ["train", "--model", model, "--seeds", str(seeds), "--stack", stack, "--device", device,
            "--out", str(tmp_path / "cli"), *tiny_args(model)]
    assert main(argv) == 0
    return calls


def sweep_groups(tmp_path, model: str, device: str, seeds: int, stack: str) -> list[int]:
    """How a sweep's plan groups the seeds of the model: the members of each unit."""
    from acai.reproduce.plan import plan

    spec = tiny_sweep("table1", tmp_path / "sweep", models=(model,), seeds=seeds, stack=stack, device=device,
                      precision="float32")
    return [len(unit.members) for unit in plan(spec)]


@pytest.mark.parametrize("model", ["baseline", "acai"])
def test_acai_train_seeds_and_a_sweep_stack_by_one_rule(monkeypatch, tmp_path, model):
    """For the same device, model and K: both train the K seeds together, or both one by one, as `stacks` says."""
    from acai.training.stacked import stacks

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the GPU's side of the rule: nothing runs on it
    for device in ("cpu", "cuda"):
        for seeds in (1, 3):
            for stack in ("auto", "on", "off"):
                together = stacks(stack, [tiny_config(model, device=device, seed=s) for s in range(seeds)])
                assert together == (seeds > 1 and (stack == "on" or stack == "auto" and device == "cuda"))
                expected = [seeds] if together else [1] * seeds
                case = (device, seeds, stack)
                assert cli_groups(monkeypatch, tmp_path, model, device, seeds, stack) == expected, case
                assert sweep_groups(tmp_path, model, device, seeds, stack) == expected, case
