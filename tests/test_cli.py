"""The command line: a tiny run end to end, and one clear line with exit code 2 on bad input."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from acai.cli import main
from acai.reproduce.sweep import reproduce

from conftest import tiny_args, tiny_sweep

TINY_ARGS = tiny_args("baseline", seed=0)


def test_train_then_interpolate(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "baseline", "--out", str(run), *tiny_args("baseline", seed=3)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["samples"] == 256 and metrics["seed"] == 3
    assert {"mean_distance", "smoothness", "probe_accuracy", "seconds"} <= set(metrics)
    png = tmp_path / "grid.png"
    assert main(["interpolate", str(run), "--out", str(png), "--pairs", "3", "--steps", "5"]) == 0
    image = Image.open(png)
    assert image.size[0] > image.size[1] > 0  # 3 rows of 5 images
    assert "wrote" in capsys.readouterr().out


def test_eval_window_sets_how_many_evaluations_the_reported_value_is_the_median_of(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--model", "baseline", "--out", str(run), "--eval-window", "2",
                 *tiny_args("baseline", samples=64, eval_every=16)]) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(log) == 4 and metrics["config"]["eval_window"] == 2
    assert metrics["mean_distance"] == pytest.approx(np.median([e["mean_distance"] for e in log[-2:]]))
    assert metrics["mean_distance"] != pytest.approx(np.median([e["mean_distance"] for e in log]))


def test_slerp_grid_and_prior_samples_from_the_command_line(tmp_path, capsys):
    runs = {model: tmp_path / model for model in ("vae", "baseline")}
    for model, run in runs.items():
        assert main(["train", "--model", model, "--out", str(run), *tiny_args(model, samples=64, eval_every=64)]) == 0
    grids = {mode: tmp_path / f"{mode}.png" for mode in ("linear", "slerp")}
    for mode, png in grids.items():
        assert main(["interpolate", str(runs["vae"]), "--out", str(png), "--pairs", "2", "--steps", "6",
                     "--mode", mode]) == 0
        assert f"2 {mode} interpolations of 6 steps by vae" in capsys.readouterr().out
    linear, slerp = (np.asarray(Image.open(grids[mode])) for mode in ("linear", "slerp"))
    assert linear.shape == slerp.shape and not np.array_equal(linear, slerp)
    samples = tmp_path / "samples.png"
    assert main(["samples", str(runs["vae"]), "--out", str(samples), "--count", "16"]) == 0
    assert "samples of its prior N(0, I)" in capsys.readouterr().out
    assert Image.open(samples).size == (8 * 66 + 2, 2 * 66 + 2)  # 16 images, 8 a row, 64 px + 2 px gaps
    assert main(["samples", str(runs["baseline"]), "--out", str(tmp_path / "codes.png"), "--count", "8"]) == 0
    assert "not samples of the model" in capsys.readouterr().out  # the release decodes N(0, I) codes for all


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "acai", "--hp", "lamda=1", "--out", "{tmp}/a"], "no hyper-parameter lamda"),
    (["train", "--model", "acai", "--data", "imagenet", "--out", "{tmp}/b"], "unknown data set"),
    (["train", "--model", "acai", "--dz", "30", "--out", "{tmp}/c"], "not a multiple"),
    (["interpolate", "{tmp}/missing", "--out", "{tmp}/x.png"], "no checkpoint"),
    # --precision reaches the runs' configs: stacked seeds refuse bfloat16 before training anything
    (["reproduce", "table1", "--precision", "bfloat16", "--stack", "on", "--seeds", "2", "--models", "baseline",
      "--quiet", "--out", "{tmp}/r"], "float32 only"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("acai: error:") and "\n" not in err


def test_reproduce_lr_trains_every_model_at_one_rate_into_its_own_folder(tmp_path, monkeypatch):
    """--lr takes the place of the preset's per-model rates (the quick preset trains BASE at 1e-3 and
    BASE+acai at ACAI's 5e-4), so that a base and its +acai version differ by the regulariser only."""
    from acai.cli import make_parser, reproduce_spec
    from acai.reproduce.plan import describe

    monkeypatch.chdir(tmp_path)
    models = ["baseline", "dropout", "dropout+acai", "aae", "acai"]
    preset = reproduce_spec(make_parser().parse_args(["reproduce", "table1", "--models", *models]))
    assert {run.model: run.config.lr for run in preset.runs()} == {
        "baseline": 3e-4, "dropout": 1e-3, "dropout+acai": 5e-4, "aae": 1e-3, "acai": 5e-4}
    one = reproduce_spec(make_parser().parse_args(["reproduce", "table1", "--models", *models, "--lr", "5e-4"]))
    assert {run.config.lr for run in one.runs()} == {5e-4} and one.out == Path("results/table1-quick-lr0.0005")
    assert '"lr": 0.0005' in describe(one) and preset.out == Path("results/table1-quick")
    with pytest.raises(SystemExit) as stop:  # argparse's exit, one line (Parser.error)
        main(["reproduce", "table1", "--lr", "0", "--quiet"])
    assert stop.value.code == 2 and not Path("results").exists()


def test_argparse_errors_exit_2_in_a_real_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "acai.cli", "train", "--model", "gan", "--out", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "acai.cli", "train", "--model", "acai", "--samples", "-5",
                             "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "positive integer" in result.stderr


def test_existing_run_needs_resume(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--model", "baseline", "--out", run, *TINY_ARGS]) == 0
    assert main(["train", "--model", "baseline", "--out", run, *TINY_ARGS]) == 2
    assert "--resume" in capsys.readouterr().err


def test_reproduce_table1_writes_table_and_figure_and_skips_finished_runs(tmp_path, capsys):
    spec = tiny_sweep("table1", tmp_path, models=("baseline", "acai"), seeds=2,
                      overrides=dict(samples=64, eval_every=32))
    reproduce(spec, progress=False)
    rows = json.loads((tmp_path / "table1.json").read_text())
    assert [r["model"] for r in rows] == ["baseline", "acai"] and rows[0]["seeds"] == 2
    table = (tmp_path / "table1.md").read_text()
    assert "| acai |" in table and "0.24 ± 0.01" in table and "6.88 ± 0.21" in table  # the paper's numbers beside
    assert {"table1.csv", "table1.json", "figure3.png"} <= {p.name for p in tmp_path.iterdir()}
    figure = Image.open(tmp_path / "figure3.png")
    assert figure.size[1] > 3 * 32  # ideal row + two model rows
    stamp = (tmp_path / "runs" / "lines-dz64" / "acai" / "seed1" / "metrics.json").stat().st_mtime_ns
    reproduce(spec, progress=False)
    assert (tmp_path / "runs" / "lines-dz64" / "acai" / "seed1" / "metrics.json").stat().st_mtime_ns == stamp


def test_train_recipe_short_outside_reproduce():
    """`acai train --recipe short` trains as the short recipe does for that model; each flag given wins."""
    from acai.cli import make_parser, train_config

    def config(*flags):
        return train_config(make_parser().parse_args(["train", "--out", "x", *flags]))

    acai = config("--model", "acai", "--recipe", "short", "--samples", "4096")
    assert (acai.batch, acai.lr, acai.lr_warmup, acai.lr_decay, acai.lr_decay_over) == (16, 5e-4, 2048, "cosine", None)
    assert config("--model", "acai", "--recipe", "short", "--lr", "2e-4", "--batch", "32").lr == 2e-4
    assert config("--model", "acai", "--recipe", "short", "--samples", "4096", "--lr-decay-over", "8192").decay_steps == 512
    vqvae = config("--model", "vqvae", "--recipe", "short", "--hp", "num_latents=5")
    assert vqvae.hparams == dict(decay=0.99, codebook_from_data=True, num_latents=5) and vqvae.lr == 3e-4
    assert config("--model", "vqvae", "--recipe", "short", "--hp", "codebook_from_data=false").hparams == dict(
        decay=0.99, codebook_from_data=False)  # a flag overrides the recipe's departure
    paper = config("--model", "acai")
    assert (paper.batch, paper.lr, paper.lr_warmup, paper.lr_decay, paper.samples) == (64, 1e-4, 0, "none", 1 << 24)


def declared_default(owner, name: str):
    """What a config class (its dataclass field) or a function (its parameter) declares as `name`'s default."""
    import dataclasses
    import inspect

    if dataclasses.is_dataclass(owner):
        field = {f.name: f for f in dataclasses.fields(owner)}[name]
        return field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
    return inspect.signature(owner).parameters[name].default


def declared_flags():
    """(a command, a flag's dest, the class or function that declares its default, the name there)."""
    from acai.measures.represent import cluster_run, linear_probe
    from acai.reproduce.executors import Local
    from acai.reproduce.figures import interpolation_rows, random_code_images
    from acai.reproduce.plan import SweepSpec
    from acai.reproduce.slurm import Slurm
    from acai.training.config import TrainConfig

    train = ["train", "--model", "acai", "--out", "o"]
    reproduce = ["reproduce", "table1"]
    return [
        *[(train, name, TrainConfig, name) for name in ("data", "seed", "eval_every", "eval_window", "device",
                                                          "precision")],
        (train, "stack", SweepSpec, "stack"),  # `acai train --seeds` stacks by the same rule, from the same default
        *[(["interpolate", "r", "--out", "x.png"], name, interpolation_rows, name) for name in ("steps", "seed", "mode")],
        *[(["samples", "r", "--out", "x.png"], name, random_code_images, name) for name in ("count", "seed")],
        *[(reproduce, name, SweepSpec, name) for name in ("stack", "restarts", "iterations", "probe_samples",
                                                          "data_dir", "device", "precision", "recipe")],
        *[(reproduce, name, Local, name) for name in ("workers", "threads")],
        (reproduce, "slurm_partition", Slurm, "partition"),
        *[(reproduce, name, Slurm, name) for name in ("gpus_per_task", "time_limit", "max_parallel")],
        *[(["probe", "r"], name, linear_probe, name) for name in ("samples", "eval_every", "window", "seed")],
        *[(["cluster", "r"], name, cluster_run, name) for name in ("restarts", "iterations", "seed")],
    ]


def test_every_flag_default_is_the_one_its_class_declares():
    from acai.cli import make_parser

    for argv, dest, owner, name in declared_flags():
        parsed = vars(make_parser().parse_args(argv))[dest]
        assert parsed == declared_default(owner, name), f"{' '.join(argv[:1])} --{dest.replace('_', '-')}"


def test_flags_left_out_build_the_classes_defaults():
    """`acai reproduce` with no flags: the SweepSpec and executors of their own defaults (the models, data
    sets and latent sizes too, which the command line leaves to the spec)."""
    from acai.cli import local_executor, make_parser, reproduce_spec, slurm_executor, train_config
    from acai.reproduce.executors import Local
    from acai.reproduce.plan import SweepSpec
    from acai.reproduce.presets import PRESETS
    from acai.reproduce.slurm import Slurm
    from acai.training.config import TrainConfig

    args = make_parser().parse_args(["reproduce", "table1", "--out", "r"])
    assert reproduce_spec(args) == SweepSpec(what="table1", out="r", preset=PRESETS[args.preset],
                                             seeds=PRESETS[args.preset].seeds)
    assert local_executor(args) == Local() and slurm_executor(args) == Slurm()
    args = make_parser().parse_args(["train", "--model", "acai", "--out", "o"])
    assert train_config(args) == TrainConfig(model="acai")  # the paper recipe: the paper's settings


def test_the_estimate_counts_the_runs_still_to_come(monkeypatch, capsys):
    """Seeds that train one after another: the estimate after the first steps covers the later runs too."""
    import acai.cli as cli

    for runs, said in ((1, "the 1,000 samples will take about 2 min more"),
                       (3, "the 1,000 samples of each of 3 runs will take about 5 min more")):
        clock = iter([0.0, 2.0])  # 2 steps of 10 samples in 2 s: 10 samples/s
        monkeypatch.setattr(cli.time, "perf_counter", lambda: next(clock))
        estimate = cli.Estimate(steps=100, batch=10, skip=0, measure=2, runs=runs)
        for step in range(4):
            estimate(step)
        assert said in capsys.readouterr().err  # 98 steps left, then 98 + 2 · 100
