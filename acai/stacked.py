"""Several seeds of one model trained at once in one process, with stacked weights.

The K members are ordinary Runs made by build_run, so each has exactly the
initial weights, probe, data stream and noise generator of its separate run.
Their parameters and buffers are stacked along a new leading dimension
(torch.func.stack_module_state) and one vmapped `step_losses` computes every
member's losses from its own batch and noise; vmap turns the convolutions with
batched weights into grouped convolutions, so K small models make one wider
piece of work. Each group's loss summed over members has, for member k's
slice, exactly member k's gradient, and Adam is elementwise, so one Adam per
group over the stacked tensors is K separate Adams.

Evaluation and checkpoints go through each member's own Run after its slice is
copied back (`unstack`): OUT/seed{s}/ holds exactly what `train()` writes, and
`load_run`, `acai interpolate` and `--resume` work on it alone.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm import tqdm

from . import train as training
from .config import ConfigError, TrainConfig
from .train import Run, finish, open_run, save_checkpoint, step_losses, to_device, train_step, update_groups


class MemberStep(nn.Module):
    """A member's model and probe as one module, so functional_call can swap in any member's slice."""

    def __init__(self, run: Run):
        super().__init__()
        self.model, self.probe = run.model, run.probe

    def forward(self, x, y, noise):  # x (B, C, H, W), y (B,), noise {name: (B, ...)}
        losses, out = step_losses(self.model, self.probe, x, y, noise)
        return losses, out.logs, out.buffers


@dataclass
class Stack:
    members: list[Run]
    modules: list[MemberStep]
    params: dict[str, torch.Tensor]  # "model.encoder.0.weight" -> (K, ...) leaf that requires grad
    buffers: dict[str, torch.Tensor]  # "model.codebook" -> (K, ...)
    groups: dict[str, list[torch.Tensor]]  # as Run.groups, over the stacked tensors
    optimizers: dict[str, torch.optim.Optimizer]


def stack_runs(members: list[Run]) -> Stack:
    """Stack the members' weights and optimiser states; one Adam per group, at that group's lr."""
    modules = [MemberStep(run) for run in members]
    params, buffers = stack_module_state(modules)
    name_of = {id(p): name for name, p in modules[0].named_parameters()}
    groups = {g: [params[name_of[id(p)]] for p in group] for g, group in members[0].groups.items()}
    optimizers = {g: torch.optim.Adam(groups[g], lr=opt.param_groups[0]["lr"])
                  for g, opt in members[0].optimizers.items()}
    for g, opt in optimizers.items():  # resumed members bring their Adam moments and step counts
        for stacked, *own in zip(groups[g], *(run.groups[g] for run in members)):
            states = [run.optimizers[g].state[p] for run, p in zip(members, own)]
            if states[0]:
                opt.state[stacked] = {key: torch.stack([s[key] for s in states]) if value.dim() else value.clone()
                                      for key, value in states[0].items()}  # "step" is one 0-d count for all
    return Stack(members, modules, params, buffers, groups, optimizers)


@torch.no_grad()
def unstack(stack: Stack) -> None:
    """Copy member k's slice of weights, buffers and Adam state into its own Run."""
    stacked = stack.params | stack.buffers
    for k, (run, module) in enumerate(zip(stack.members, stack.modules)):
        for name, tensor in chain(module.named_parameters(), module.named_buffers()):
            tensor.copy_(stacked[name][k])
        for g, opt in stack.optimizers.items():
            for stacked_param, own in zip(stack.groups[g], run.groups[g]):
                if opt.state[stacked_param]:
                    run.optimizers[g].state[own] = {key: value[k].clone() if value.dim() else value.clone()
                                                    for key, value in opt.state[stacked_param].items()}


def stacked_step(stack: Stack, x: torch.Tensor, y: torch.Tensor, noise: dict) -> dict[str, torch.Tensor]:
    """train_step for all members: x (K, B, C, H, W), y (K, B), noise {name: (K, B, ...)} -> logs (K,)."""
    def member(params, buffers, x, y, noise):
        return functional_call(stack.modules[0], (params, buffers), (x, y, noise))

    # randomness="error" (the default) also proves that no model draws inside the step.
    losses, logs, buffers = vmap(member)(stack.params, stack.buffers, x, y, noise)  # each (K, ...)
    update_groups({g: loss.sum() for g, loss in losses.items()}, stack.groups, stack.optimizers)
    with torch.no_grad():
        for name, value in buffers.items():
            stack.buffers[f"model.{name}"].copy_(value)
    return {**{f"loss_{k}": v.detach() for k, v in losses.items()}, **logs}


def stacked_noise(members: list[Run], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Each member's step noise, drawn with its own generator (outside vmap) -> {name: (K, B, ...)}."""
    draws = [run.model.draw_noise(run.config.batch, run.generator, run.device, dtype) for run in members]
    return {name: torch.stack([d[name] for d in draws]) for name in draws[0]}


def next_batch(members: list[Run]):
    """Each member's own batch and noise, stacked: x (K, B, C, H, W), y (K, B), noise."""
    batches = [run.source.train_batch(run.config.seed, run.step, run.config.batch) for run in members]
    x = to_device(torch.stack([b[0] for b in batches]), members[0].device)
    y = to_device(torch.stack([b[1] for b in batches]), members[0].device)
    return x, y, stacked_noise(members, x.dtype)


def catch_up(run: Run, target: int) -> None:
    """Bring a member saved at an earlier step (killed between members' writes) to `target` on its own."""
    while run.step < target:
        x, y = run.source.train_batch(run.config.seed, run.step, run.config.batch)
        train_step(run, to_device(x, run.device), to_device(y, run.device))
        run.step += 1
        if run.step % run.config.eval_every_steps == 0:
            run.history.append(training.evaluate(run))


def check_configs(configs: list[TrainConfig], outs: list[Path]) -> None:
    if not configs or len(configs) != len(outs):
        raise ConfigError(f"train_stacked needs one output folder per config, got {len(configs)} and {len(outs)}")
    first = configs[0].to_dict()
    for config in configs[1:]:
        differ = [k for k, v in config.to_dict().items() if k != "seed" and first[k] != v]
        if differ:
            raise ConfigError(f"stacked seeds must share every setting but the seed; {', '.join(differ)} differ")
    if len({c.seed for c in configs}) < len(configs) or len(set(outs)) < len(outs):
        raise ConfigError("stacked members need distinct seeds and distinct output folders")
    if first["precision"] != "float32":  # torch.autocast is silently ignored inside torch.func.vmap
        raise ConfigError(f"stacked seeds train in float32 only (autocast does not work under vmap); "
                          f"drop --precision {first['precision']} or train the seeds one at a time")


def train_stacked(configs: list[TrainConfig], outs: list, resume: bool = False, progress: bool = True) -> list[dict]:
    """Train (or resume) one member per config, stacked; each `out` gets what train() would write."""
    outs = [Path(out) for out in outs]
    check_configs(configs, outs)
    members = [open_run(config, out, resume) for config, out in zip(configs, outs)]
    for run in members:
        catch_up(run, max(m.step for m in members))
    stack, cfg, step = stack_runs(members), members[0].config, members[0].step
    samples = cfg.batch * len(members)  # per stacked step
    bar = tqdm(total=cfg.steps * samples, initial=step * samples, unit="sample", unit_scale=True,
               disable=not progress, desc=f"{cfg.model}/{cfg.data}/seeds {','.join(str(c.seed) for c in configs)}",
               dynamic_ncols=True)
    tick = last_save = time.perf_counter()  # like train(): seconds count training only

    def save(now: float) -> None:
        for run, out in zip(members, outs):
            run.seconds += now - tick  # each member's wall time, shared with the others
            save_checkpoint(run, out)

    try:
        while step < cfg.steps:
            logs = stacked_step(stack, *next_batch(members))
            step += 1
            for run in members:
                run.step = step
            bar.update(samples)
            if progress and step % 25 == 0:
                bar.set_postfix({k: f"{v.mean().item():.4g}" for k, v in logs.items()})
            evaluate_now = step % cfg.eval_every_steps == 0 or step == cfg.steps
            if evaluate_now or time.perf_counter() - last_save > cfg.checkpoint_seconds:
                now = time.perf_counter()
                unstack(stack)
                if evaluate_now:
                    for run in members:
                        run.history.append(training.evaluate(run))
                        if progress:
                            bar.write(json.dumps({"seed": run.config.seed} | {
                                k: round(v, 6) if isinstance(v, float) else v for k, v in run.history[-1].items()}))
                save(now)
                tick = last_save = time.perf_counter()
    except KeyboardInterrupt:
        unstack(stack)
        save(time.perf_counter())
        bar.close()
        raise
    bar.close()
    return [finish(run, out) for run, out in zip(members, outs)]
