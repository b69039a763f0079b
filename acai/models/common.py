"""The small interface every autoencoder offers the trainer, and its shared parts.

A model is an nn.Module with
  encode(x) -> z            the latent code that interpolation mixes
  decode(z) -> x̂            an image in [-1, 1]
  features(x) -> h          what the linear probe reads (gradient stopped)
  draw_noise(batch, generator, device, dtype) -> {name: tensor}   a step's random draws
  training_losses(x, noise) -> StepOutput   everything a step needs, from one forward pass
  param_groups() -> {name: {"params": [...], "lr"?: float}}
StepOutput.losses has one scalar per parameter group: the trainer takes the
gradient of losses[name] with respect to group `name` only, which is how the
release's `minimize(loss, var_list=...)` pairs losses and networks.

Randomness is an input, not a side effect: the trainer draws a step's noise
with its run's own generator and passes it in, and training_losses writes
nothing into the model (StepOutput.buffers carries new buffer values for the
trainer to store). This is what lets torch.func.vmap train several seeds at
once and give each exactly the draws and updates of its separate run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..nets import Arch, decoder, encoder


@dataclass
class StepOutput:
    losses: dict[str, torch.Tensor]  # group name -> scalar minimised by that group
    features: torch.Tensor  # (B, ...) probe input, detached by the trainer
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # extra scalars to report
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)  # buffer name -> its new value


@dataclass
class NoHparams:
    """This model has no hyper-parameters beyond the architecture."""


class ConvAutoencoder(nn.Module):
    """Encoder + decoder of appendix B; the plain parts of every model."""

    Hparams = NoHparams

    def __init__(self, arch: Arch, hp=None):
        super().__init__()
        self.arch = arch
        self.hp = hp if hp is not None else self.Hparams()
        self.encoder = encoder(arch)
        self.decoder = decoder(arch)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, C, H, W) -> (B, latent, h, w)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, latent, h, w) -> (B, C, H, W)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def draw_noise(self, batch: int, generator: torch.Generator, device: torch.device,
                   dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {}  # a deterministic model draws nothing

    def param_groups(self) -> dict[str, dict]:
        return {"ae": {"params": [p for n, p in self.named_parameters() if not n.startswith("critic.")]}}
