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

`StackedStepper` is the step function that acai/training/loop.py's one loop calls for
a stack of K > 1; evaluation and checkpoints go through each member's own Run
after its slice is copied back (`sync`): OUT/seed{s}/ holds exactly what
`train()` writes for it alone, and `load_run`, `acai interpolate` and `--resume` work on it
alone.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from acai.training.config import ConfigError, TrainConfig
from acai.core.nets import to_device
from acai.training.machine import resolve_device
from acai.training.run import Run, adam, set_schedule, step_losses, update_groups

STACK = ("auto", "on", "off")  # do the seeds of a model train together? auto: where it pays, on a GPU
DEFAULT_STACK = "auto"  # of `acai train --stack` and of a sweep (`SweepSpec.stack`)


def stacks(choice: str, configs: Sequence[TrainConfig]) -> bool:
    """Do these seeds of one model train together, with stacked weights in one vmapped step? The one rule,
    for `acai train --seeds` and for a sweep's plan: two or more seeds, and `choice` is on, or auto on a
    GPU. A GPU running one small run waits on kernel launches, which K stacked seeds fill; on a CPU vmap's
    grouped convolutions are slower than separate runs (docs/speed.md, "Stacked seeds")."""
    if choice not in STACK:
        raise ConfigError(f"unknown stack choice {choice!r}; use {', '.join(STACK)}")
    if len(configs) < 2:
        return False
    return choice == "on" or (choice == "auto" and resolve_device(configs[0].device).type == "cuda")


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
    optimizers = {g: adam(groups[g], opt.param_groups[0]["lr"])
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
    first = stack.members[0]
    set_schedule(stack.optimizers, first.base_lr, first.config, first.step)
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


class StackedStepper:
    """The Stepper of a stack: one vmapped step for all members; `sync` copies each slice back."""

    def __init__(self, runs: list[Run]):
        self.runs = runs
        self.stack = stack_runs(runs)

    def step(self):
        logs = stacked_step(self.stack, *next_batch(self.runs))
        for run in self.runs:
            run.step += 1
        return logs

    def sync(self):
        unstack(self.stack)


def check_stackable(configs: list[TrainConfig], outs: list[Path]) -> None:
    first = configs[0].to_dict()
    for config in configs[1:]:
        differ = [k for k, v in config.to_dict().items() if k != "seed" and first[k] != v]
        if differ:
            raise ConfigError(f"stacked seeds must share every setting but the seed; {', '.join(differ)} differ")
    if len({c.seed for c in configs}) < len(configs) or len(set(outs)) < len(outs):
        raise ConfigError("stacked members need distinct seeds and distinct output folders")
    if first["precision"] != "float32":  # torch.autocast is silently ignored inside torch.func.vmap
        raise ConfigError(f"stacked seeds train in float32 only (autocast does not work under vmap), these are "
                          f"{first['precision']}; use --precision float32, or train the seeds one at a time")

