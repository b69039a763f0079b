"""The `acai` command line. Bad input ends with one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import os
import signal
import sys
import time
from pathlib import Path

try:  # torch takes seconds to load, and `acai` imports this module first: Ctrl-C then is one line
    import numpy as np
    import torch

    from acai.core.data import Capability, DataError, offers
    from acai.core.lines import INTERPOLATIONS
    from acai.core.models import MODELS, NAMES
    from acai.core.nets import INITS
    from acai.measures.represent import PROTOCOLS, cluster_run, linear_probe, pixel_probe, run_probe
    from acai.reproduce.executors import Local
    from acai.reproduce.figures import interpolation_rows, random_code_images
    from acai.reproduce.plan import SWEEP_PRECISIONS, SWEEP_RECIPES, SweepSpec
    from acai.reproduce.presets import PRESETS, RECIPES
    from acai.reproduce.slurm import Slurm
    from acai.reproduce.tables import TABLES
    from acai.training.config import LR_DECAYS, MAX_SEED, PRECISIONS, ConfigError, TrainConfig
    from acai.training.run import RunFailed
    from acai.training.signals import Interrupted, StoppedUnsaved
    from acai.training.stacked import DEFAULT_STACK, STACK, stacks
except KeyboardInterrupt:
    print("acai: stopped by SIGINT while starting; nothing was done", file=sys.stderr, flush=True)
    # Not SystemExit: a Ctrl-C that lands in an exec() of source text (dataclasses make their __init__
    # so) marks CPython's interpreter, which then kills itself by SIGINT at exit whatever code it was given.
    os._exit(128 + signal.SIGINT)

PAPER = TrainConfig()  # the paper's settings (SPEC 3): the defaults of the flags below are read from it


def declared(owner, name: str):
    """The default that `owner`, a dataclass or a function, declares for `name`: a flag that sets it takes
    its default from there, so that the default is written once."""
    if dataclasses.is_dataclass(owner):
        field = next(f for f in dataclasses.fields(owner) if f.name == name)
        if field.default is not dataclasses.MISSING:
            return field.default
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
    else:
        default = inspect.signature(owner).parameters[name].default
        if default is not inspect.Parameter.empty:
            return default
    raise TypeError(f"{owner.__qualname__} declares no default for {name}")


def parse_hparams(items: list[str]) -> dict:
    """['lam=0.3', 'critic_sizes=(64,64)'] -> {'lam': '0.3', 'critic_sizes': '(64,64)'}: the text of each
    value, which the model's Hparams parses by the type it declares (acai/core/models/hparams.py)."""
    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--hp expects NAME=VALUE, got {item!r}")
        values[key.strip()] = text
    return values


def output_path(text: str, what: str = "run folder", example: str = "runs/acai-lines") -> Path:
    if not text.strip():  # Path("") is the current folder: a run would be written among the user's files
        raise ConfigError(f"--out is empty; give the {what} to write, e.g. --out {example}")
    return Path(text)


def saved_budget(out: Path) -> int | None:
    """The --samples of the run saved in `out`, if there is one."""
    from acai.training import checkpoint as ckpt
    from acai.training.run_folder import CHECKPOINT

    if not (out / CHECKPOINT).exists():
        return None
    samples = ckpt.load_torch(out / CHECKPOINT)["config"].get("samples")
    return samples if isinstance(samples, int) and samples > 0 else None


def duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min" if seconds >= 90 \
        else f"{seconds:.0f} s"


class Estimate:
    """An after_step hook: once `measure` steps are timed, one line saying how long the rest of the
    budget will take at that rate, `runs` runs of `steps` steps one after another. Timing starts at
    step `skip`: the first steps are slow (warm-up)."""

    def __init__(self, steps: int, batch: int, skip: int = 5, measure: int = 20, runs: int = 1):
        self.steps, self.batch, self.skip, self.measure, self.runs = steps, batch, skip, measure, runs
        self.start: tuple[int, float] | None = None
        self.said = False

    def __call__(self, step: int) -> None:
        if self.said or step < self.skip:
            return
        if self.start is None:
            self.start = (step, time.perf_counter())
            return
        timed = step - self.start[0]
        if timed >= self.measure:
            rate = timed * self.batch / (time.perf_counter() - self.start[1])
            budget = f"{self.steps * self.batch:,} samples" + (f" of each of {self.runs} runs" if self.runs > 1 else "")
            left = self.steps - step + (self.runs - 1) * self.steps
            print(f"acai: at {rate:,.0f} samples/s the {budget} will take about {duration(left * self.batch / rate)} "
                  f"more; pass --samples N for a shorter run", file=sys.stderr, flush=True)
            self.said = True


def train_config(args) -> TrainConfig:
    """`acai train`'s run: the recipe's fields for the model (--recipe), then every flag given."""
    recipe = RECIPES[args.recipe].values(args.model)
    given = {name: getattr(args, name) for name in ("batch", "lr", "lr_warmup", "lr_decay", "lr_decay_over", "init")
             if getattr(args, name) is not None}
    hparams = {**recipe.pop("hparams", {}), **parse_hparams(args.hp)}
    return TrainConfig(model=args.model, data=args.data, samples=args.samples or PAPER.samples, seed=args.seed,
                       eval_every=args.eval_every, eval_window=args.eval_window, device=args.device,
                       data_dir=args.data_dir, dz=args.dz,
                       scales=args.scales, depth=args.depth, latent=args.latent, precision=args.precision,
                       hparams=hparams, **{**recipe, **given})


def cmd_train(args) -> None:
    from contextlib import ExitStack

    from acai.training.loop import Hooks, train
    from acai.training.run_folder import METRICS

    out = output_path(args.out)
    requested, hooks = args.samples, None
    if args.samples is None:
        first = out / f"seed{args.seed}" if args.seeds > 1 else out
        args.samples = (saved_budget(first) if args.resume else None) or PAPER.samples
    config = train_config(args)
    if args.seeds == 1:
        configs, outs = [config], [out]
    else:  # K seeds, each in its own OUT/seed{s}/ run folder
        configs = [dataclasses.replace(config, seed=args.seed + k) for k in range(args.seeds)]
        outs = [out / f"seed{c.seed}" for c in configs]
    # Together with stacked weights, or one after another: the rule a sweep's plan follows too.
    pairs = list(zip(configs, outs))
    groups = [pairs] if stacks(args.stack, configs) else [[pair] for pair in pairs]

    def shown(metrics: dict) -> str:
        keys = ("mean_distance", "smoothness", "probe_accuracy", "samples", "seconds")
        state = f" state={metrics['state']}" if metrics.get("state", "ok") != "ok" else ""
        return " ".join(f"{k}={metrics[k]:.6g}" for k in keys if k in metrics) + state

    if requested is None and not args.resume:
        # The paper's budget is long on a CPU (about 18 h for ACAI on 2 cores): say so before it starts.
        def announce():
            print(f"acai: --samples not given: training the paper's budget of {config.samples:,} samples (2^24); pass "
                  f"--samples N for a shorter run (e.g. --samples 65536); a time estimate follows after the first "
                  f"steps", file=sys.stderr, flush=True)

        hooks = Hooks(before_training=announce, after_step=Estimate(config.steps, config.batch, runs=len(groups)))
    results = []
    with ExitStack() as held:
        if args.tensorboard:  # event files in each run folder's tensorboard/, written through the loop's hooks
            from acai.reproduce.tensorboard_log import Writer

            board = held.enter_context(Writer()).hooks()
            hooks = dataclasses.replace(board, before_training=hooks.before_training, after_step=hooks.after_step) \
                if hooks is not None else board
        for group in groups:
            results += train([config for config, _ in group], [out for _, out in group], resume=args.resume,
                             progress=not args.quiet, hooks=hooks)
            if hooks is not None:  # the budget is announced once, before the first run
                hooks = dataclasses.replace(hooks, before_training=None)
    for metrics, out in zip(results, outs):
        prefix = f"seed {metrics['seed']}: " if args.seeds > 1 else ""
        print(f"{prefix}{shown(metrics)} -> wrote {out / METRICS}")


def png_path(text: str) -> Path:
    """--out of a command that draws: a PNG file, named so (the bytes written are PNG whatever the name)."""
    path = output_path(text, "PNG file", "grid.png")
    if path.suffix.lower() != ".png":
        raise ConfigError(f"--out {text}: the picture is written as PNG, so its name must end in .png; e.g. "
                          f"--out {path.with_suffix('.png').name if path.name else 'grid.png'}")
    return path


def cmd_interpolate(args) -> None:
    from acai.pretrained import resolve
    from acai.reproduce.figures import grid_image, interpolation_rows, save_png

    if args.steps < 2:
        raise ConfigError(f"--steps {args.steps}: an interpolation needs at least 2 steps (its two ends); "
                          f"e.g. --steps 16")
    png_path(args.out)
    run = resolve(args.run).load("interpolate")
    if offers(run.source, Capability.LINES):
        angles = np.random.default_rng(args.seed).uniform(0, 2 * np.pi, 2 * args.pairs)
        images = run.source.batch_from_angles(angles)[0]
    else:
        x, _ = run.source.test_set()
        if len(x) < 2 * args.pairs:  # never reuse an image: each interpolation has its own two ends
            fit = len(x) // 2
            hint = (f"pass --pairs {fit} or fewer" if fit else
                    "add images to the folder (a tenth of them are the test split) and train again")
            raise ConfigError(f"the test split of {run.config.data} has {len(x)} image{'s' if len(x) != 1 else ''}; "
                              f"--pairs {args.pairs} needs {2 * args.pairs} (two per interpolation); {hint}")
        images = x[torch.from_numpy(np.random.default_rng(args.seed).permutation(len(x))[:2 * args.pairs])]
    rows = interpolation_rows(run.model, images[:args.pairs], images[args.pairs:], args.steps, seed=args.seed,
                              mode=args.mode)
    path = save_png(grid_image(rows), args.out)
    print(f"wrote {path}: {args.pairs} {args.mode} interpolations of {args.steps} steps by {run.config.model}")


def cmd_samples(args) -> None:
    from acai.pretrained import resolve
    from acai.reproduce.figures import random_code_images, samples_grid, save_png

    png_path(args.out)
    model = resolve(args.run).load("samples").model
    path = save_png(samples_grid(random_code_images(model, args.count, args.seed)), args.out)
    if model.PRIOR is not None:
        what = f"samples of its prior {model.PRIOR}"
    else:
        what = (f"codes drawn from N(0, I) (as the release's sample grids draw them; {type(model).__name__} has "
                f"no prior, so these are not samples of the model)")
    print(f"wrote {path}: {args.count} decoded {what}, by {args.run}")


def reproduce_spec(args):
    """The SweepSpec that `acai reproduce` runs, from its flags."""
    preset = PRESETS[args.preset]
    suffix = ("" if args.precision == "preset" else f"-{args.precision}") + (
        "-paper-recipe" if args.recipe == "paper" and args.preset != "paper" else "") + (
        "" if args.lr is None else f"-lr{args.lr:g}") + ("" if args.init is None else f"-init-{args.init}")
    chosen = {name: tuple(getattr(args, name)) for name in ("models", "datasets", "latents") if getattr(args, name)}
    return SweepSpec(what=args.what, out=args.out or f"results/{args.what}-{args.preset}{suffix}", preset=preset,
                     seeds=args.seeds or preset.seeds, device=args.device,
                     precision=args.precision, recipe=args.recipe, data_dir=args.data_dir, stack=args.stack,
                     overrides={name: getattr(args, name) for name in ("lr", "init") if getattr(args, name) is not None},
                     probe_samples=args.probe_samples,
                     restarts=args.restarts, iterations=args.iterations, **chosen)  # the others: the spec's defaults


def inline_executor(args):
    from acai.reproduce.executors import Inline

    return Inline()


def local_executor(args):
    return Local(args.workers, args.threads)


def slurm_executor(args):
    return Slurm(partition=args.slurm_partition, gpus_per_task=args.gpus_per_task, time_limit=args.time_limit,
                 max_parallel=args.max_parallel)


EXECUTORS = {"inline": inline_executor, "local": local_executor, "slurm": slurm_executor}  # --executor


def cmd_reproduce(args) -> None:
    from acai.reproduce.sweep import reproduce

    reproduce(reproduce_spec(args), EXECUTORS[args.executor](args), progress=not args.quiet)


def cmd_status(args) -> None:
    from acai.reproduce.status import status

    print(status(args.out))


def cmd_report(args) -> None:
    from acai.reproduce.report import write_report

    if args.tensorboard:
        from acai.reproduce.tensorboard_log import convert, summary_writer

        summary_writer()  # a missing tensorboard: one line now, before anything is written
        for line in convert(args.out):
            print(line)
    print(f"wrote {write_report(args.out)}")


def cmd_probe(args) -> None:
    from acai.measures.represent import pixel_probe, run_probe

    if (args.run is None) == (args.data is None):
        raise ConfigError("give either a run folder (its codes) or --data NAME (raw pixels), not both or neither")
    # Without --protocol, each probe's own: the tandem probe's for a run's codes, classify_fc for pixels.
    protocol = args.protocol or declared(run_probe if args.run is not None else pixel_probe, "protocol")
    options = dict(samples=args.samples, eval_every=args.eval_every, window=args.window, seed=args.seed,
                   progress=show_progress(args), protocol=protocol)
    if args.run is not None:
        result, what = run_probe(args.run, **options), f"codes of {args.run}"
    else:
        result, what = pixel_probe(args.data, args.data_dir, **options), f"pixels of {args.data}"
    print(f"linear probe on the {what}, {protocol} protocol: test accuracy {result['accuracy']:.2f}% "
          f"(median of the last {min(args.window, len(result['history']))} evaluations, "
          f"{result['samples']:,} samples, {result['seconds']:.0f} s)")


def cmd_cluster(args) -> None:
    from acai.measures.represent import cluster_run
    from acai.pretrained import resolve
    from acai.training.run_folder import CLUSTER

    result = cluster_run(args.run, args.restarts, args.iterations, args.seed, progress=show_progress(args))
    print(f"K-Means on {result['codes'][0]:,} x {result['codes'][1]} codes ({result['clustered_codes']}) "
          f"of {args.run}: test accuracy "
          f"{result['accuracy']:.2f}% ({args.restarts} restarts, best inertia {result['inertia']:.6g}, "
          f"{result['seconds']:.0f} s); wrote {resolve(args.run).cache / CLUSTER}")


def cmd_evaluate(args) -> None:
    import json

    from acai.pretrained import resolve
    from acai.training.run import rescore_lines

    trained = resolve(args.run)
    result = rescore_lines(trained.load("evaluate"))
    if args.json:
        print(json.dumps({"source": trained.label, **result}, indent=2))
        return
    print(f"{trained.label}: Mean Distance {result['mean_distance']:.6g}, Smoothness {result['smoothness']:.6g} "
          f"({result['state']}), scored again on the lines of its evaluation {result['evaluation']} ("
          f"{result['pairs']} interpolations, seed {result['seed']})")


def cmd_pretrained(args) -> None:
    import json

    from acai import pretrained

    found = pretrained.entries()
    if args.json:
        print(json.dumps({name: item.to_dict() for name, item in found.items()}, indent=2))
        return
    problems = []
    rows = [("name", "model", "data", "d_z", "recipe", "samples", "Mean Distance", "Smoothness", "stored", "size",
             "trained")]
    for name, item in found.items():
        try:
            pretrained.verified_bytes(item)
            size = f"{(pretrained.DIRECTORY / item.file).stat().st_size / 2**20:.1f} MiB"
        except pretrained.DamagedPretrained as error:
            problems.append(error)
            size = "missing" if not (pretrained.DIRECTORY / item.file).exists() else "damaged"
        metrics = [f"{item.metrics[key]:.4g}" if key in item.metrics else "-" for key in ("mean_distance", "smoothness")]
        rows.append((name, item.model, item.data, str(item.d_z), item.recipe, f"{item.samples:,}", *metrics,
                     item.precision, size, item.date))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"{len(found)} models in {pretrained.manifest_path()}; metrics: `acai evaluate pretrained:NAME`, "
          f"a grid: `acai interpolate pretrained:NAME --out grid.png`; --json: every field")
    if problems:
        raise problems[0]


def show_progress(args) -> bool:
    """A progress bar on a terminal only: into a log file its carriage-return updates are noise."""
    return not args.quiet and sys.stderr.isatty()


# The largest count a flag takes (samples, steps, restarts...): numpy's and torch's int64 indices.
MAX_COUNT = 2**63 - 1


def whole_number(text: str) -> int | None:
    """'65536' or '6.5536e4' -> 65536; None for text that is not a finite whole number ('1e999', '1.5')."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


def positive_int(text: str) -> int:
    value = whole_number(text)
    if value is None or not 0 < value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"expected a positive integer (at most 2^63 - 1), got {text!r}")
    return value


def seed_int(text: str) -> int:
    """A seed: what every generator a run or a measurement seeds accepts (TrainConfig checks the same)."""
    value = whole_number(text)
    if value is None or not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to 2^63 - 1, got {text!r}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


class Parser(argparse.ArgumentParser):
    """argparse with the one-line errors of the rest of the CLI: `acai: error: ...; see acai train --help`
    instead of a usage block (exit code 2 as before)."""

    def error(self, message):
        self.exit(2, f"acai: error: {message}; see {self.prog} --help\n")


# The positional argument of the commands that draw from or measure trained weights (acai.pretrained.resolve).
RUN_OR_PRETRAINED = "run folder written by `acai train`, or pretrained:NAME (a shipped model: acai pretrained lists them)"


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="acai", description="Interpolation in autoencoders (Berthelot et al.)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one autoencoder")
    p.add_argument("--model", required=True, choices=list(NAMES),
                   help=f"one of {', '.join(MODELS)}, or BASE+acai: BASE with the ACAI regulariser")
    p.add_argument("--data", default=PAPER.data, help="lines, mnist, svhn, cifar10, celeba or folder:PATH")
    p.add_argument("--samples", type=positive_int, default=None,
                   help=f"training budget in samples (default: the paper's {PAPER.samples:,}, hours on a CPU; with "
                        f"--resume: the run's own)")
    p.add_argument("--recipe", default="paper", choices=list(RECIPES),
                   help="how the run learns: paper (Adam 1e-4, batch 64, constant rate), short (batch 16, a "
                        "per-model rate, warm-up, cosine to 0 at the end of the run, He's init) or long (short with "
                        "the release's init, ACAI at 2e-4); docs/faithfulness.md. The flags below override its fields")
    p.add_argument("--batch", type=positive_int, default=None, help=f"default: the recipe's (paper: {PAPER.batch})")
    p.add_argument("--lr", type=finite_float, default=None,
                   help=f"Adam's rate for every group (default: the recipe's; paper: {PAPER.lr:g})")
    p.add_argument("--lr-warmup", type=int, default=None, help="samples over which the rate rises from 0")
    p.add_argument("--lr-decay", choices=LR_DECAYS, default=None, help="none (constant) or cosine (to 0)")
    p.add_argument("--lr-decay-over", type=positive_int, default=None,
                   help="samples over which the cosine falls to 0 (default: the run's); more than --samples "
                        "stops part of the way down")
    p.add_argument("--init", choices=INITS, default=None,
                   help=f"the convolutions' initial scale: release (the paper's, N(0, 1/(1.04·fan_in))) or he "
                        f"(twice that variance: no mean-image plateau); default: the recipe's (paper: {PAPER.init})")
    p.add_argument("--seed", type=seed_int, default=PAPER.seed)
    p.add_argument("--eval-every", type=positive_int, default=PAPER.eval_every,
                   help=f"samples between evaluations ({PAPER.eval_every:,})")
    p.add_argument("--eval-window", type=positive_int, default=PAPER.eval_window,
                   help=f"report the median of the last this-many evaluations (the paper's {PAPER.eval_window}; "
                        f"one undefined value among them makes the reported value undefined)")
    p.add_argument("--dz", type=positive_int, default=None, help="latent size d_z (e.g. 32 or 256 on MNIST)")
    p.add_argument("--scales", type=positive_int, default=None, help="override the data set's number of scales")
    p.add_argument("--depth", type=positive_int, default=None, help="override the first layer's width")
    p.add_argument("--latent", type=positive_int, default=None, help="override the latent channels")
    p.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE",
                   help="model hyper-parameter (BASE+acai: BASE's, and lam, gamma, critic_depth)")
    p.add_argument("--data-dir", default=None, help="data root (default $ACAI_DATA or ~/.cache/acai/data)")
    p.add_argument("--device", default=PAPER.device, help="cpu, cuda or auto")
    p.add_argument("--precision", default=PAPER.precision, choices=PRECISIONS,
                   help="bfloat16: forward passes under autocast, weights and evaluation float32 (default float32)")
    p.add_argument("--out", required=True, help="run folder (checkpoint.pt, log.jsonl, metrics.json)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--seeds", type=positive_int, default=1,
                   help="train seeds SEED..SEED+K-1 into OUT/seed{s}/ (default 1: OUT)")
    p.add_argument("--stack", choices=STACK, default=DEFAULT_STACK,
                   help="with --seeds: train the seeds together with stacked weights in one vmapped step (auto: on a "
                        "GPU; on a CPU they train one after another, which is faster there)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write losses, metrics and interpolation grids as TensorBoard events into "
                        "OUT/tensorboard/ (needs pip install 'acai[tensorboard]')")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("interpolate", help="draw a grid of interpolations from a trained run")
    p.add_argument("run", help=RUN_OR_PRETRAINED)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--pairs", type=positive_int, default=8)
    p.add_argument("--steps", type=positive_int, default=declared(interpolation_rows, "steps"))
    p.add_argument("--seed", type=seed_int, default=declared(interpolation_rows, "seed"))
    p.add_argument("--mode", choices=list(INTERPOLATIONS), default=declared(interpolation_rows, "mode"),
                   help="linear mixtures (the paper's figures) or spherical interpolation (the release's slerp grid)")
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("samples", help="decode random codes z ~ N(0, I) of a trained run (Figure 4 for the VAE)")
    p.add_argument("run", help=RUN_OR_PRETRAINED)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--count", type=positive_int, default=declared(random_code_images, "count"))
    p.add_argument("--seed", type=seed_int, default=declared(random_code_images, "seed"))
    p.set_defaults(func=cmd_samples)

    p = sub.add_parser("reproduce", help="reproduce a table or the figures of the paper (a sweep of runs)")
    p.add_argument("what", choices=list(TABLES))  # a table is a description in acai/reproduce/tables.py
    p.add_argument("--preset", default="quick", choices=list(PRESETS))
    p.add_argument("--datasets", nargs="+", default=None, help="subset of the data sets (table2/3, figures)")
    p.add_argument("--latents", nargs="+", type=positive_int, default=None,
                   help="latent sizes d_z (default: the paper's; quick: the first only)")
    p.add_argument("--seeds", type=positive_int, default=None, help="seeds per model (default: the preset's)")
    p.add_argument("--stack", choices=STACK, default=declared(SweepSpec, "stack"),
                   help="train the seeds of a model together with stacked weights (auto: on a GPU)")
    p.add_argument("--models", nargs="+", choices=list(NAMES), default=None,
                   help="default: the paper's seven; BASE+acai adds the ACAI regulariser to BASE")
    p.add_argument("--restarts", type=positive_int, default=declared(SweepSpec, "restarts"),
                   help=f"K-Means restarts for table3 ({declared(SweepSpec, 'restarts'):,}, the release's)")
    p.add_argument("--iterations", type=positive_int, default=declared(SweepSpec, "iterations"),
                   help=f"K-Means iterations per restart at most, for table3 ({declared(SweepSpec, 'iterations'):,})")
    p.add_argument("--probe-samples", type=positive_int, default=declared(SweepSpec, "probe_samples"),
                   help="budget of the probe on final codes and the pixel baseline (default: the preset's)")
    p.add_argument("--data-dir", default=declared(SweepSpec, "data_dir"),
                   help="data root (default $ACAI_DATA or ~/.cache/acai/data)")
    p.add_argument("--device", default=declared(SweepSpec, "device"))
    p.add_argument("--precision", default=declared(SweepSpec, "precision"), choices=SWEEP_PRECISIONS,
                   help="preset: each model as the preset says (README, presets); or one precision for all, "
                        "into its own folder (default ...-PRESET-PRECISION)")
    p.add_argument("--recipe", default=declared(SweepSpec, "recipe"), choices=SWEEP_RECIPES,
                   help="paper: the preset's budget with the paper's recipe (Adam 1e-4, batch 64, float32)")
    p.add_argument("--lr", type=finite_float, default=None,
                   help="one Adam rate for every model, in place of the preset's per-model rates (a model's "
                        "own group rates, e.g. the AAE's critic, stay), into its own folder (default "
                        "...-lrRATE); e.g. to compare BASE with BASE+acai at one rate")
    p.add_argument("--init", choices=INITS, default=None,
                   help="one initialisation for every model in place of the recipe's, into its own folder "
                        "(default ...-init-NAME); e.g. --init release: the quick preset with the paper's init")
    p.add_argument("--executor", default="local", choices=list(EXECUTORS),
                   help="inline: in this process; local: worker processes (default); slurm: a job array")
    p.add_argument("--workers", type=positive_int, default=declared(Local, "workers"),
                   help="local: worker processes (default: one per core, fewer if fewer units)")
    p.add_argument("--threads", type=positive_int, default=declared(Local, "threads"),
                   help="local: torch threads per worker (default: the cores shared among the workers)")
    p.add_argument("--slurm-partition", default=declared(Slurm, "partition"), help="slurm: the partition to submit to")
    p.add_argument("--gpus-per-task", type=int, default=declared(Slurm, "gpus_per_task"),
                   help="slurm: GPUs for each task (%(default)s: CPU tasks)")
    p.add_argument("--time-limit", type=positive_int, default=declared(Slurm, "time_limit"),
                   help="slurm: minutes per task (default %(default)s); a task that reaches it is requeued and resumes")
    p.add_argument("--max-parallel", type=positive_int, default=declared(Slurm, "max_parallel"),
                   help="slurm: tasks running at once (default: all)")
    p.add_argument("--out", default=None, help="results folder (default results/WHAT-PRESET)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("status", help="the state of every run of a sweep, and what each table still lacks")
    p.add_argument("out", help="the --out folder of `acai reproduce`")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("report", help="one self-contained HTML page of a reproduction, a run or a folder of runs: "
                                      "OUT/report.html")
    p.add_argument("out", help="the --out folder of `acai reproduce` or `acai train`, or a folder of run folders")
    p.add_argument("--tensorboard", action="store_true",
                   help="also convert every run's log.jsonl (and final grid) into TensorBoard events in "
                        "RUN/tensorboard/ (needs pip install 'acai[tensorboard]')")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("probe", help="linear probe on a trained run's codes, or on raw pixels (--data)")
    p.add_argument("run", nargs="?", default=None, help=RUN_OR_PRETRAINED)
    p.add_argument("--data", default=None, help="probe the raw pixels of this data set instead (the paper's baseline)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--samples", type=positive_int, default=declared(linear_probe, "samples"),
                   help=f"training samples ({declared(linear_probe, 'samples'):,}, as the paper)")
    p.add_argument("--eval-every", type=positive_int, default=declared(linear_probe, "eval_every"))
    p.add_argument("--window", type=positive_int, default=declared(linear_probe, "window"),
                   help="report the median of the last this-many")
    p.add_argument("--protocol", choices=list(PROTOCOLS), default=None,
                   help="tandem: the tandem probe's (constant rate, no smoothing; default for a run's codes); "
                        "classify_fc: the release's pixel classifier (label smoothing 0.1, rate x0.1 per half "
                        "run; default for --data)")
    p.add_argument("--seed", type=seed_int, default=declared(linear_probe, "seed"))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("cluster", help="K-Means clustering accuracy of a trained run's codes (table 3)")
    p.add_argument("run", help=RUN_OR_PRETRAINED)
    p.add_argument("--restarts", type=positive_int, default=declared(cluster_run, "restarts"))
    p.add_argument("--iterations", type=positive_int, default=declared(cluster_run, "iterations"))
    p.add_argument("--seed", type=seed_int, default=declared(cluster_run, "seed"))
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser("evaluate", help="score trained weights again on the lines metrics, on the lines and draws "
                                        "of the training loop's evaluation at those weights")
    p.add_argument("run", help=RUN_OR_PRETRAINED)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("pretrained", help="list the trained models shipped with acai (use one as pretrained:NAME)")
    p.add_argument("--json", action="store_true", help="print every field of the manifest")
    p.set_defaults(func=cmd_pretrained)
    return parser


def stopped(error: KeyboardInterrupt, command: str | None) -> str:
    """The one line for a stop signal: what it left saved, and how to go on."""
    signum = getattr(error, "signum", signal.SIGINT)
    name = signal.Signals(signum).name
    if isinstance(error, StoppedUnsaved):
        kept = (f"the folder keeps the checkpoint of step {error.step:,} ({error.samples:,} samples)"
                if error.step else "the folder keeps only the step-0 checkpoint (nothing trained is saved)")
        return (f"acai: stopped at once by a second Ctrl-C, without saving: {kept}; rerun with --resume to "
                f"continue from it")
    if isinstance(error, Interrupted) or command == "reproduce":  # the loop (a sweep's: each unit's) saved first
        return (f"acai: stopped by {name}; the checkpoint is saved, rerun with --resume (reproduce: rerun it) to "
                f"continue")
    return (f"acai: stopped by {name} outside a training step, so this stop saved nothing; rerun the command "
            f"(acai train: with --resume if its folder holds a checkpoint)")


def main(argv=None) -> int:
    args = None
    try:
        args = make_parser().parse_args(argv)  # a bad argument: one line and SystemExit(2), see Parser
        args.func(args)
    except (ConfigError, DataError) as error:
        print(f"acai: error: {error}", file=sys.stderr)
        return 2
    except RunFailed as error:
        print(f"acai: run failed: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt as error:
        print(stopped(error, getattr(args, "command", None)), file=sys.stderr)
        return 128 + getattr(error, "signum", signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
