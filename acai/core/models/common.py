"""The small interface every autoencoder offers the trainer, and its shared parts.

A model is an nn.Module with
  encode(x, generator=None) -> z   the codes: what interpolation mixes and K-Means clusters
                            (the release's `ops.encode`); a model whose code is a sample
                            (the VAE) draws it with `generator`
  CODES                     what encode returns, in words (declared per model)
  decode(z) -> x̂            an image in [-1, 1]
  features(x) -> h          what the linear probe reads (gradient stopped); not always the codes:
                            the VAE's probe reads h before sampling, the VQ-VAE's the quantised
                            bottleneck output
  PRIOR                     the distribution the codes were trained to follow ("N(0, I)" for the
                            VAE and the AAE), None for a model trained with no prior
  random_codes(count, generator) -> z   N(0, I) codes of the latent shape: what the release
                            decodes as "samples" for every model (samples of the prior only
                            where PRIOR says so)
  draw_noise(batch, generator, device, dtype) -> {name: tensor}   a step's random draws
  training_losses(x, noise) -> StepOutput   everything a step needs, from one forward pass
  training_pass(x, noise, mix=None) -> Pass  the same forward pass opened up: also the code
                            that interpolation mixes and the reconstruction, and, when `mix` is
                            given, the decoded images of mix(code) from the same decoder pass.
                            What acai/core/models/regularizer.py composes with (the six models
                            other than ACAI have it; training_losses is its `out`)
  GROUPS = {group: (submodule names, ...)}   which networks each optimiser trains
  param_groups() -> {name: {"params": [...], "lr"?: float}}, built from GROUPS
StepOutput.losses has one scalar per parameter group: the trainer takes the
gradient of losses[name] with respect to group `name` only, which is how the
release's `minimize(loss, var_list=...)` pairs losses and networks. Every
parameter belongs to exactly one group; `check_param_groups` enforces it when
a model is built, so a new network nobody assigned is an error, not a
parameter silently trained by the wrong optimiser.

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
from .hparams import Hparams


@dataclass
class StepOutput:
    losses: dict[str, torch.Tensor]  # group name -> scalar minimised by that group
    features: torch.Tensor  # (B, ...) probe input, detached by the trainer
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # extra scalars to report
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)  # buffer name -> its new value


@dataclass
class Pass:
    """One training forward pass, opened up for a regulariser that builds on it (regularizer.py)."""

    out: StepOutput  # the model's own losses, features, logs and buffers, exactly as training_losses gives them
    code: torch.Tensor  # (B, ...) the code that interpolation mixes (what encode(x) gives), with its graph
    reconstruction: torch.Tensor  # (B, C, H, W) the training reconstruction, an image in [-1, 1]
    mixed: torch.Tensor | None = None  # (B, C, H, W) images of mix(code), decoded alongside; None without mix


def decode_alongside(decode, code: torch.Tensor, extra: torch.Tensor | None):
    """decode(code), and decode(extra) in the same pass when extra is given -> (images, extra images or None).

    One pass over the concatenated codes, as ACAI decodes reconstructions and mixtures."""
    if extra is None:
        return decode(code), None
    images, extra_images = decode(torch.cat([code, extra])).split([len(code), len(extra)])
    return images, extra_images


@dataclass
class NoHparams(Hparams):
    """This model has no hyper-parameters beyond the architecture."""


class ModelDefinitionError(TypeError):
    """A model's declaration is inconsistent (a parameter in no group, or in two)."""


class ConvAutoencoder(nn.Module):
    """Encoder + decoder of appendix B; the plain parts of every model."""

    Hparams = NoHparams
    GROUPS: dict[str, tuple[str, ...]] = {"ae": ("encoder", "decoder")}  # group -> the submodules it trains
    CODES = "the encoder output"  # what encode() returns, for messages and result files
    PRIOR: str | None = None  # the prior its codes were trained to follow, if any

    def __init__(self, arch: Arch, hp=None, generator: torch.Generator | None = None):
        super().__init__()  # generator: draws the weights (None: torch's global generator)
        self.arch = arch
        self.hp = hp if hp is not None else self.Hparams()
        self.encoder = encoder(arch, generator=generator)
        self.decoder = decoder(arch, generator=generator)

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.encoder(x)  # (B, C, H, W) -> (B, latent, h, w); deterministic: no draw

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, latent, h, w) -> (B, C, H, W)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def random_codes(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """(count, latent, h, w) codes from N(0, I), drawn with `generator` on its device.

        The release's image grids decode such codes for every model (lib/train.py,
        `np.random.standard_normal(latents.shape)`); they are samples of the model only
        where PRIOR is N(0, I)."""
        return torch.randn(count, *self.arch.latent_shape, generator=generator, device=generator.device)

    def draw_noise(self, batch: int, generator: torch.Generator, device: torch.device,
                   dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {}  # a deterministic model draws nothing

    def training_losses(self, x: torch.Tensor, noise: dict[str, torch.Tensor]) -> StepOutput:
        return self.training_pass(x, noise).out

    def training_pass(self, x: torch.Tensor, noise: dict[str, torch.Tensor], mix=None) -> Pass:
        """The training forward pass; `mix` (code (B, ...) -> codes (B, ...)) asks for the images of
        mix(code) from the same decoder pass (Pass.mixed). A model that defines only training_losses
        (ACAI) cannot be composed with the regulariser."""
        raise NotImplementedError(f"{type(self).__name__} defines no training_pass")

    def param_groups(self) -> dict[str, dict]:
        return {group: {"params": [p for name in modules for p in self.get_submodule(name).parameters()]}
                for group, modules in self.GROUPS.items()}


def check_param_groups(model: nn.Module) -> None:
    """Every parameter of `model` in exactly one of its param_groups(), else ModelDefinitionError."""
    owner: dict[int, str] = {}
    names = {id(p): name for name, p in model.named_parameters()}
    for group, spec in model.param_groups().items():
        for p in spec["params"]:
            if id(p) in owner:
                raise ModelDefinitionError(f"{type(model).__name__}: parameter {names.get(id(p))} is in groups "
                                           f"{owner[id(p)]!r} and {group!r}; give it one")
            owner[id(p)] = group
    orphans = [name for name, p in model.named_parameters() if id(p) not in owner]
    if orphans:
        raise ModelDefinitionError(f"{type(model).__name__}: parameters {', '.join(orphans)} belong to no group; "
                                   f"add their submodule to GROUPS")
