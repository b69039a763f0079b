"""A run: everything one training run holds, how one step updates it, and its folder (SPEC 3, 5).

Each step: the run's own generator draws the step's noise, one forward pass of
the model gives every loss; each loss's gradient is taken with respect to its
own parameter group and applied by that group's Adam, as the release's
`minimize(loss, var_list=...)` ops. A linear probe learns, in tandem, to
classify the gradient-stopped features. `evaluate` runs the evaluations of
acai/core/evaluations.py. A run folder holds checkpoint.pt (`Run.state_dict`),
log.jsonl (one line per evaluation), metrics.json (`finish`) and, for a run
that stopped on a non-finite loss, failed.json (acai/training/run_folder.py names
them and reads them back). acai/training/loop.py is the loop.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from acai.training import checkpoint as ckpt
from acai.training.config import REPORTING_FIELDS, ConfigError, TrainConfig
from acai.core.data import Capability, DataSource, get_source, offers
from acai.core.evaluations import EVALUATIONS, lines_metrics
from acai.core.models import build
from acai.core.nets import apply_init, dense
from acai.training.machine import provenance, resolve_device
from acai.training.run_folder import CHECKPOINT, CLOCK, LOG, METRICS, refuse_diverged, summarise

LOSS_EVERY = 25  # steps between progress updates (and the losses a reporter sees)
NOISE_STREAM, EVALUATION_STREAM = 1, 2  # tags that keep a run's random streams apart


class RunFailed(RuntimeError):
    """A run stopped and cannot go on as configured (its loss diverged); the message is one line."""


def derived_seed(*keys: int) -> int:
    """A 63-bit seed for the stream named by `keys`, e.g. (seed, NOISE_STREAM).

    Deriving, rather than reusing config.seed, keeps the noise draws from
    replaying the numbers that initialised the weights.
    """
    words = [key & (2**64 - 1) for key in keys]  # SeedSequence takes non-negative integers only
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1)


@dataclass(kw_only=True)
class Run:
    """Everything a run holds; what a checkpoint saves and restores. Built by keyword (`build_run`)."""

    config: TrainConfig
    source: DataSource
    model: torch.nn.Module
    probe: torch.nn.Module | None
    groups: dict[str, list[torch.nn.Parameter]]
    optimizers: dict[str, torch.optim.Optimizer]
    device: torch.device
    generator: torch.Generator  # every random draw of training (noise), on `device`
    base_lr: dict[str, float]  # each group's rate before the schedule's factor (lr_factor)
    step: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    clock: list[dict] = field(default_factory=list)  # per evaluation: samples, training seconds, time.time()

    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "probe": self.probe.state_dict() if self.probe is not None else None,
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "step": self.step,
            "seconds": self.seconds,
            "history": self.history,
            "clock": self.clock,
            "generator": self.generator.get_state(),
            "generator_device": self.device.type,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.probe is not None:
            self.probe.load_state_dict(state["probe"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.step, self.seconds, self.history = state["step"], state["seconds"], state["history"]
        self.clock = state.get("clock", [])  # checkpoints written before the clock have none
        # Checkpoints older than the explicit noise have no generator, and a CPU and a GPU generator
        # differ in kind: either way only evaluation is affected, never a resumed stream on the same device.
        if "generator" in state and state.get("generator_device", "cpu") == self.device.type:
            self.generator.set_state(state["generator"])


# Adam as the release's tf.train.AdamOptimizer computes it (SPEC 3): β = (0.9, 0.999) and ε = 1e-8, where
# TensorFlow adds ε to √v before the bias correction: θ -= lr·√(1-β2ᵗ)/(1-β1ᵗ) · m/(√v + ε). torch adds it after:
# θ -= lr/(1-β1ᵗ) · m/(√v/√(1-β2ᵗ) + ε). The two agree when torch's ε is ε/√(1-β2ᵗ) at step t (3.2e-7 at t = 1,
# 1e-8 after a few thousand steps), which `set_schedule` sets before every step.
TF_ADAM_EPSILON = 1e-8
ADAM_BETAS = (0.9, 0.999)


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam over one group's tensors, stepped with the multi-tensor (foreach) kernels. torch picks them by
    default on a GPU only; on a CPU its per-tensor loop took 5.0 ms of a 43 ms baseline step at batch 16
    against 4.1 ms, with the same values to the last bit (the formula and its order are the same)."""
    return torch.optim.Adam(params, lr=lr, betas=ADAM_BETAS, eps=tensorflow_epsilon(0), foreach=True)


def tensorflow_epsilon(step: int) -> float:
    """torch's ε that makes its Adam step `step` (0-based) equal TensorFlow's with ε = 1e-8 (see above)."""
    return TF_ADAM_EPSILON / math.sqrt(1.0 - ADAM_BETAS[1] ** (step + 1))


def build_model(config: TrainConfig, source: DataSource, device: torch.device,
                weights: torch.Generator) -> torch.nn.Module:
    """`config`'s model for `source`'s images on `device`, its initial weights drawn from `weights`."""
    model = build(config.model, config.arch(colors=source.shape[0]), weights, **config.hparams)
    apply_init(model, config.init)
    return model.to(device, memory_format=torch.channels_last)  # see to_device


def build_run(config: TrainConfig) -> Run:
    """Model, probe, optimisers and noise generator for `config`, initialised from its seed."""
    device = resolve_device(config.device)
    source = get_source(config.data, config.data_dir)
    weights = torch.Generator().manual_seed(config.seed)  # the run's own: initial weights of model and probe
    model = build_model(config, source, device, weights)
    declared = model.param_groups()
    unknown = sorted(set(config.group_lr) - set(declared) - {"probe"})
    if unknown:
        raise ConfigError(f"group_lr names {', '.join(unknown)}, but {config.model} has the groups "
                          f"{', '.join([*declared, 'probe'])}")
    groups = {name: group["params"] for name, group in declared.items()}
    # A group's rate: the recipe's group_lr if it names the group, else the model's own (the AAE's critic), else lr.
    base_lr = {name: config.group_lr.get(name, group.get("lr", config.lr)) for name, group in declared.items()}
    optimizers = {name: adam(groups[name], base_lr[name]) for name in groups}
    probe = None
    if source.num_classes:
        with torch.no_grad():
            feature_dim = model.features(torch.zeros(1, *source.shape, device=device)).numel()
        probe = dense(feature_dim, source.num_classes, weights).to(device)
        groups["probe"] = list(probe.parameters())
        base_lr["probe"] = config.group_lr.get("probe", config.lr)
        optimizers["probe"] = adam(groups["probe"], base_lr["probe"])
    generator = torch.Generator(device).manual_seed(derived_seed(config.seed, NOISE_STREAM))
    return Run(config=config, source=source, model=model, probe=probe, groups=groups, optimizers=optimizers,
               device=device, generator=generator, base_lr=base_lr)


def lr_factor(config: TrainConfig, step: int) -> float:
    """What multiplies every group's rate at `step` (0-based): 1 for the paper's constant rate.

    Linear warm-up over `lr_warmup` samples, then optionally a cosine decay to 0
    at `lr_decay_over` samples (the end of the budget unless set). A pure
    function of the step, so a resumed run follows the same schedule.
    """
    seen = (step + 1) * config.batch  # samples once this step is taken
    factor = min(1.0, seen / config.lr_warmup) if config.lr_warmup else 1.0
    if config.lr_decay == "cosine":
        factor *= 0.5 * (1.0 + math.cos(math.pi * step / config.decay_steps))
    return factor


def set_schedule(optimizers: dict, base_lr: dict[str, float], config: TrainConfig, step: int) -> None:
    """Every group's rate and Adam ε for training step `step` (0-based): the schedule's factor times the
    group's base rate, and TensorFlow's ε placement. Every group steps once per training step, so its Adam
    step count is `step` + 1 (a resumed run restores both)."""
    factor, eps = lr_factor(config, step), tensorflow_epsilon(step)
    for name, optimizer in optimizers.items():
        for group in optimizer.param_groups:
            group["lr"] = base_lr[name] * factor
            group["eps"] = eps


def step_losses(model, probe, x: torch.Tensor, y: torch.Tensor, noise: dict, precision: str = "float32"):
    """Every group's loss from one forward pass (the probe's on detached features) -> (losses, StepOutput).

    Pure, so that the stacked trainer can vmap it over seeds. With precision
    "bfloat16" the model's forward runs under autocast (convolutions and dense
    layers in bf16, on float32 weights); the losses are returned in float32 and
    the probe reads float32 features, so nothing outside the forward changes.
    """
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        out = model.training_losses(x, noise)
    losses = {name: loss.float() for name, loss in out.losses.items()}  # .float() is a no-op in float32
    if probe is not None:
        losses["probe"] = F.cross_entropy(probe(out.features.detach().float().flatten(1)), y)
    return losses, out


def update_groups(losses: dict[str, torch.Tensor], groups: dict[str, list], optimizers: dict) -> None:
    """Step each group's optimiser on the gradient of that group's own (scalar) loss only."""
    names = list(losses)
    # All gradients first: stepping one optimiser would change weights the others' graphs still use.
    grads = {name: torch.autograd.grad(losses[name], groups[name], retain_graph=i < len(names) - 1,
                                       allow_unused=True)
             for i, name in enumerate(names)}
    for name in names:
        for param, grad in zip(groups[name], grads[name]):
            param.grad = grad
        optimizers[name].step()


def train_step(run: Run, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """One update of every parameter group from one forward pass; returns losses and logs."""
    noise = run.model.draw_noise(x.shape[0], run.generator, run.device, x.dtype)
    losses, out = step_losses(run.model, run.probe, x, y, noise, run.config.precision)
    set_schedule(run.optimizers, run.base_lr, run.config, run.step)
    update_groups(losses, run.groups, run.optimizers)
    with torch.no_grad():  # after the gradients: no graph may still read the old values
        for name, value in out.buffers.items():
            run.model.get_buffer(name).copy_(value)
    return {**{f"loss_{k}": v.detach() for k, v in losses.items()}, **out.logs}


def evaluate(run: Run) -> dict:
    """Every evaluation that applies to the run, at its current step (acai/core/evaluations.py).

    A model that samples its codes (the VAE) draws them from a generator seeded by
    (seed, evaluation index), so an evaluation never depends on what else ran before."""
    run.model.eval()
    index = len(run.history)
    generator = evaluation_generator(run.config.seed, index, run.device)
    result = {"samples": run.step * run.config.batch, "evaluation": index}
    for evaluation in EVALUATIONS:
        if evaluation.applies(run):
            result.update(evaluation(run, generator))
    run.model.train()
    return result


def evaluation_generator(seed: int, index: int, device: torch.device) -> torch.Generator:
    """The generator of evaluation `index` of the run seeded `seed`: what draws a sampling model's codes."""
    return torch.Generator(device).manual_seed(derived_seed(seed, EVALUATION_STREAM, index))


def save_checkpoint(run: Run, out: Path) -> None:
    ckpt.save_torch(run.state_dict(), out / CHECKPOINT)
    save_logs(run, out)


def save_logs(run: Run, out: Path) -> None:
    """log.jsonl and clock.jsonl from the run's history and clock, which its checkpoint holds too."""
    ckpt.save_bytes("".join(json.dumps(h) + "\n" for h in run.history).encode(), out / LOG)
    ckpt.save_bytes("".join(json.dumps(c) + "\n" for c in run.clock).encode(), out / CLOCK)


def load_run(out: Path, config: TrainConfig | None = None, device: str | None = None) -> Run:
    """Rebuild a run from out/checkpoint.pt; with `config`, check it is the same run.

    `device` moves it (default: where it was trained, or the CPU if that was a GPU
    this machine lacks), so a run trained on a GPU can be drawn or scored anywhere."""
    path = Path(out) / CHECKPOINT
    if not path.exists():
        raise ConfigError(f"no checkpoint at {path}; train first (acai train ... --out {out})")
    state = ckpt.load_torch(path)
    saved = TrainConfig.from_dict(state["config"])
    if config is not None:
        # A resumed run may get a larger budget, unless its rates decay towards the end of the old one.
        free = ("samples", *REPORTING_FIELDS) if saved.lr_decay == "none" else REPORTING_FIELDS
        differ = [k for k, v in config.to_dict().items() if k not in free and saved.to_dict()[k] != v]
        if differ:
            raise ConfigError(f"--resume: {out} holds a run with different {', '.join(differ)}; "
                              "use the same settings or another --out")
        if config.steps < state["step"]:  # metrics.json would then report more samples than its config's budget
            done = state["step"] * saved.batch
            raise ConfigError(f"--resume: {out} has already trained {done:,} samples, more than --samples "
                              f"{config.samples:,}; pass --samples {done:,} or more to continue it, or train "
                              f"the shorter run into another --out")
        for key in free:
            setattr(saved, key, getattr(config, key))
    elif device is not None:
        saved.device = device
    elif saved.device != "cpu" and not torch.cuda.is_available():
        saved.device = "cpu"
    run = build_run(saved)
    try:
        run.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as error:  # weights of another architecture or model
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        detail = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]  # torch's first mismatch
        raise ConfigError(f"{path}: its weights do not fit its own config ({detail[:200]}); delete it and train "
                          f"again, or restore it from a copy") from None
    return run


def open_run(config: TrainConfig, out: Path, resume: bool) -> Run:
    """A fresh run for an empty `out`, or (with `resume`) the one saved there."""
    if (out / CHECKPOINT).exists() and not resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    run = load_run(out, config) if resume and (out / CHECKPOINT).exists() else build_run(config)
    out.mkdir(parents=True, exist_ok=True)
    return run


def finish(run: Run, out: Path) -> dict:
    """The reported metrics of a finished run, also written to out/metrics.json."""
    cfg = run.config
    metrics = {**summarise(run.history, cfg.eval_window), "samples": run.step * cfg.batch,
               "seconds": run.seconds, "samples_per_second": run.step * cfg.batch / max(run.seconds, 1e-9),
               "evaluations": len(run.history), "model": cfg.model, "data": cfg.data, "seed": cfg.seed,
               "config": cfg.to_dict(), **provenance(run.device)}
    ckpt.save_json(metrics, out / METRICS)
    return metrics


@dataclass(frozen=True, kw_only=True)
class TrainedModel:
    """What drawing from and measuring trained weights read: a run without its optimisers, its tandem probe
    or its history. `evaluation` is the index of the training loop's evaluation at these weights: the
    lines it drew and the generator of a sampling model's codes (`rescore_lines`)."""

    config: TrainConfig
    source: DataSource
    model: torch.nn.Module  # in eval mode
    device: torch.device
    evaluation: int


class Trained(Protocol):
    """Trained weights that `acai interpolate`, `samples`, `evaluate`, `probe` and `cluster` read: a run
    folder (`RunFolder`) or a shipped model (acai/pretrained/__init__.py, `Pretrained`);
    `acai.pretrained.resolve` makes one from those commands' RUN_OR_PRETRAINED argument."""

    @property
    def label(self) -> str: ...  # how messages name it: the folder, or pretrained:NAME

    @property
    def cache(self) -> Path: ...  # the folder that caches measurements of these weights (probe.json, cluster.json)

    def digest(self) -> str: ...  # SHA-256 of the weights' file: what a cached measurement is keyed to

    def check(self, command: str) -> None: ...  # ConfigError for weights `command` must not read, before a cache

    def load(self, command: str) -> TrainedModel: ...  # the model, after `check`


@dataclass(frozen=True)
class RunFolder:
    """A run folder's checkpoint as `Trained` weights."""

    folder: Path

    @property
    def label(self) -> str:
        return str(self.folder)

    @property
    def cache(self) -> Path:
        return self.folder

    def digest(self) -> str:
        path = self.folder / CHECKPOINT
        if not path.exists():
            raise ConfigError(f"no checkpoint at {path}; train first (acai train ... --out {self.folder})")
        return ckpt.digest(path)

    def check(self, command: str) -> None:
        refuse_diverged(self.folder, command)

    def load(self, command: str) -> TrainedModel:
        self.check(command)
        run = load_run(self.folder)
        run.model.eval()
        return TrainedModel(config=run.config, source=run.source, model=run.model, device=run.device,
                            evaluation=saved_evaluation(run))


def saved_evaluation(run: Run) -> int:
    """The index of the evaluation the training loop made, or would make, at the run's current step: the
    last one logged when it was made at this step (a finished run's last), else the next one (a checkpoint
    written between evaluations)."""
    made_here = bool(run.history) and run.history[-1].get("samples") == run.step * run.config.batch
    return len(run.history) - 1 if made_here else len(run.history)


def rescore_lines(trained: TrainedModel) -> dict[str, float | str]:
    """The lines metrics of trained weights as the training loop scored them at their evaluation: the same
    lines, the same generator. For a finished run in float32: its last logged values, to the bit."""
    if not offers(trained.source, Capability.LINES):
        raise ConfigError(f"the lines metrics need a model trained on lines, and this one was trained on "
                          f"{trained.config.data}; measure its codes with acai probe or acai cluster")
    trained.model.eval()
    generator = evaluation_generator(trained.config.seed, trained.evaluation, trained.device)
    return {**lines_metrics(trained.model, trained.source, trained.config, trained.evaluation, generator),
            "evaluation": trained.evaluation, "seed": trained.config.seed}
