"""One training loop for every autoencoder (SPEC 3, 5).

Each step: the run's own generator draws the step's noise, one forward pass of
the model gives every loss; each loss's gradient is taken with respect to its
own parameter group and applied by that group's Adam, as the release's
`minimize(loss, var_list=...)` ops. A linear probe learns, in tandem, to
classify the gradient-stopped features. Every `eval_every` samples the loop
evaluates (lines metrics, probe accuracy), appends to log.jsonl and writes a
checkpoint; `resume=True` continues from it on the same sample and noise
streams. acai/stacked.py trains several seeds at once from the same parts.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint as ckpt
from .config import BFLOAT16_CHECKED, REPORTING_FIELDS, ConfigError, TrainConfig
from .data import get_source
from .lines import evaluate as lines_evaluate
from .lines import interpolate_codes
from .models import build
from .nets import dense

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
LOG = "log.jsonl"
REPORTED = ("mean_distance", "smoothness", "probe_accuracy")
NOISE_STREAM, EVALUATION_STREAM = 1, 2  # tags that keep a run's random streams apart


def derived_seed(*keys: int) -> int:
    """A 63-bit seed for the stream named by `keys`, e.g. (seed, NOISE_STREAM).

    Deriving, rather than reusing config.seed, keeps the noise draws from
    replaying the numbers that initialised the weights.
    """
    words = [key & (2**64 - 1) for key in keys]  # SeedSequence takes non-negative integers only
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda or auto")
    return torch.device(name)


@dataclass
class Run:
    """Everything a run holds; what a checkpoint saves and restores."""

    config: TrainConfig
    source: object
    model: torch.nn.Module
    probe: torch.nn.Module | None
    groups: dict[str, list[torch.nn.Parameter]]
    optimizers: dict[str, torch.optim.Optimizer]
    device: torch.device
    generator: torch.Generator  # every random draw of training (noise), on `device`
    step: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)

    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "probe": self.probe.state_dict() if self.probe is not None else None,
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "step": self.step,
            "seconds": self.seconds,
            "history": self.history,
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
        # Checkpoints older than the explicit noise have no generator, and a CPU and a GPU generator
        # differ in kind: either way only evaluation is affected, never a resumed stream on the same device.
        if "generator" in state and state.get("generator_device", "cpu") == self.device.type:
            self.generator.set_state(state["generator"])


def build_run(config: TrainConfig) -> Run:
    """Model, probe, optimisers and noise generator for `config`, initialised from its seed."""
    device = resolve_device(config.device)
    source = get_source(config.data, config.data_dir)
    torch.manual_seed(config.seed)
    model = build(config.model, config.arch(colors=source.shape[0]), **config.hparams)
    model = model.to(device, memory_format=torch.channels_last)  # see to_device
    groups = {name: group["params"] for name, group in model.param_groups().items()}
    optimizers = {name: torch.optim.Adam(group["params"], lr=group.get("lr", config.lr))
                  for name, group in model.param_groups().items()}
    probe = None
    if source.num_classes:
        with torch.no_grad():
            feature_dim = model.features(torch.zeros(1, *source.shape, device=device)).numel()
        probe = dense(feature_dim, source.num_classes).to(device)
        groups["probe"] = list(probe.parameters())
        optimizers["probe"] = torch.optim.Adam(groups["probe"], lr=config.lr)
    generator = torch.Generator(device).manual_seed(derived_seed(config.seed, NOISE_STREAM))
    return Run(config, source, model, probe, groups, optimizers, device, generator)


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
    update_groups(losses, run.groups, run.optimizers)
    with torch.no_grad():  # after the gradients: no graph may still read the old values
        for name, value in out.buffers.items():
            run.model.get_buffer(name).copy_(value)
    return {**{f"loss_{k}": v.detach() for k, v in losses.items()}, **out.logs}


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Images go channels-last: oneDNN's convolutions run 1.2-2x faster that way on CPU."""
    return x.to(device, non_blocking=True, memory_format=torch.channels_last) if x.dim() == 4 else x.to(device)


@torch.no_grad()
def in_chunks(fn, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    return torch.cat([fn(x[i:i + chunk]) for i in range(0, len(x), chunk)])


@torch.no_grad()
def lines_interpolations(model, lines: torch.Tensor, steps: int = 16) -> np.ndarray:
    """The release's protocol: pair the first half of `lines` with the second half,
    decode `steps` evenly spaced mixtures of their codes -> (pairs, steps, 32, 32)."""
    pairs = len(lines) // 2
    z = in_chunks(model.encode, to_device(lines, next(model.parameters()).device))  # (2P, latent, h, w)
    mixed = interpolate_codes(z[:pairs], z[pairs:], steps).flatten(0, 1)  # (P·S, latent, h, w)
    images = in_chunks(model.decode, mixed)  # (P·S, 1, 32, 32)
    return images.view(pairs, steps, *images.shape[1:])[:, :, 0].float().cpu().numpy()


@torch.no_grad()
def probe_accuracy(run: Run) -> float:
    x, y = run.source.test_set()
    logits = in_chunks(lambda b: run.probe(run.model.features(to_device(b, run.device)).flatten(1)), x, 1000)
    return 100.0 * (logits.argmax(1).cpu() == y).float().mean().item()


def evaluate(run: Run) -> dict:
    """One evaluation at the current step: probe accuracy and, on lines, the two metrics."""
    run.model.eval()
    result = {"samples": run.step * run.config.batch, "evaluation": len(run.history)}
    if run.probe is not None:
        result["probe_accuracy"] = probe_accuracy(run)
    if hasattr(run.source, "evaluation_lines"):
        lines = run.source.evaluation_lines(run.config.seed, len(run.history), 2 * run.config.eval_pairs)
        # The VAE samples its codes: seed those draws by (seed, evaluation), like the lines, so an
        # evaluation never depends on what else this process has drawn (other runs, other seeds).
        with torch.random.fork_rng():
            torch.manual_seed(derived_seed(run.config.seed, EVALUATION_STREAM, len(run.history)))
            result["mean_distance"], result["smoothness"] = lines_evaluate(lines_interpolations(run.model, lines))
    run.model.train()
    return result


def summarise(history: list[dict], window: int) -> dict:
    """The reported value of each metric: median of its last `window` evaluations."""
    recent = history[-window:]
    summary = {}
    for key in REPORTED:
        values = [h[key] for h in recent if key in h]
        if values:
            summary[key] = float(np.nanmedian(values)) if not all(math.isnan(v) for v in values) else float("nan")
    return summary


def save_checkpoint(run: Run, out: Path) -> None:
    ckpt.save_torch(run.state_dict(), out / CHECKPOINT)
    ckpt.save_bytes("".join(json.dumps(h) + "\n" for h in run.history).encode(), out / LOG)


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
        free = ("samples", *REPORTING_FIELDS)  # a resumed run may get a larger budget
        differ = [k for k, v in config.to_dict().items() if k not in free and saved.to_dict()[k] != v]
        if differ:
            raise ConfigError(f"--resume: {out} holds a run with different {', '.join(differ)}; "
                              "use the same settings or another --out")
        for key in free:
            setattr(saved, key, getattr(config, key))
    elif device is not None:
        saved.device = device
    elif saved.device != "cpu" and not torch.cuda.is_available():
        saved.device = "cpu"
    run = build_run(saved)
    run.load_state_dict(state)
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
               "config": cfg.to_dict()}
    ckpt.save_json(metrics, out / METRICS)
    return metrics


def train(config: TrainConfig, out, resume: bool = False, progress: bool = True) -> dict:
    """Train (or resume) one run; writes checkpoint.pt, log.jsonl and metrics.json in `out`."""
    out = Path(out)
    run = open_run(config, out, resume)
    cfg = run.config
    if cfg.precision == "bfloat16" and cfg.model not in BFLOAT16_CHECKED:
        warnings.warn(f"bfloat16 is not checked for {cfg.model} (its quick-preset lines metrics left float32's "
                      f"seed spread, see benchmarks/precision_check.py); use --precision float32 for paper numbers",
                      stacklevel=2)
    bar = tqdm(total=cfg.steps * cfg.batch, initial=run.step * cfg.batch, unit="sample", unit_scale=True,
               disable=not progress, desc=f"{cfg.model}/{cfg.data}/seed{cfg.seed}", dynamic_ncols=True)
    tick = last_save = time.perf_counter()  # run.seconds counts training only, not evaluation or saving
    window = (run.step, tick)  # for the samples/s shown on the bar
    try:
        while run.step < cfg.steps:
            x, y = run.source.train_batch(cfg.seed, run.step, cfg.batch)
            logs = train_step(run, to_device(x, run.device), to_device(y, run.device))
            run.step += 1
            bar.update(cfg.batch)
            if progress and run.step % 25 == 0:
                now = time.perf_counter()
                rate = (run.step - window[0]) * cfg.batch / (now - window[1])
                window = (run.step, now)
                bar.set_postfix({k: f"{v.item():.4g}" for k, v in logs.items()} | {"samples/s": f"{rate:.0f}"})
            evaluate_now = run.step % cfg.eval_every_steps == 0 or run.step == cfg.steps
            if evaluate_now or time.perf_counter() - last_save > cfg.checkpoint_seconds:
                run.seconds += time.perf_counter() - tick
                if evaluate_now:
                    run.history.append(evaluate(run))
                    if progress:
                        bar.write(json.dumps({k: round(v, 6) if isinstance(v, float) else v
                                              for k, v in run.history[-1].items()}))
                save_checkpoint(run, out)
                tick = last_save = time.perf_counter()
                window = (run.step, tick)
    except KeyboardInterrupt:
        run.seconds += time.perf_counter() - tick
        save_checkpoint(run, out)
        bar.close()
        raise
    bar.close()
    return finish(run, out)
