"""Encoder and decoder of appendix B, shared by all seven autoencoders (SPEC 3)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import skip_init
import torch.nn.functional as F

LEAK = 0.2


@dataclass(frozen=True)
class Arch:
    """Shape of the encoder/decoder pair. d_z = latent · (size / 2^scales)²."""

    scales: int = 4
    depth: int = 16
    latent: int = 16
    colors: int = 1
    size: int = 32

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = self.size >> self.scales
        return (self.latent, side, side)

    @property
    def dz(self) -> int:
        c, h, w = self.latent_shape
        return c * h * w


def conv(cin: int, cout: int, kernel: int = 3, generator: torch.Generator | None = None) -> nn.Conv2d:
    """'same' conv with the release's init: N(0, 1/((1 + 0.2²)·fan_in)), bias 0. Weights are drawn from
    `generator` (None: torch's global generator)."""
    layer = skip_init(nn.Conv2d, cin, cout, kernel, padding=kernel // 2)
    with torch.no_grad():
        nn.init.normal_(layer.weight, std=1.0 / math.sqrt((1 + LEAK**2) * kernel * kernel * cin), generator=generator)
        nn.init.zeros_(layer.bias)
    return layer


def dense(fan_in: int, fan_out: int, generator: torch.Generator | None = None) -> nn.Linear:
    """Dense layer with TensorFlow's default init (Glorot uniform, bias 0), as the release; drawn from
    `generator` (None: torch's global generator)."""
    layer = skip_init(nn.Linear, fan_in, fan_out)
    with torch.no_grad():
        nn.init.xavier_uniform_(layer.weight, generator=generator)
        nn.init.zeros_(layer.bias)
    return layer


# How a run's convolutions start (TrainConfig.init). "release": the release's N(0, 1/((1+0.2²)·fan_in)), half of
# He's variance for a leaky ReLU, so the signal's variance halves at every layer: at init, over a batch of lines,
# the decoded images differ by ~3e-6 and every model first learns the mean image (docs/faithfulness.md). "he":
# He et al. (2015, eq. 10) for a leaky ReLU of slope 0.2, N(0, 2/((1+0.2²)·fan_in)): the same draws times √2,
# which keeps the variance through the stack.
INITS = ("release", "he")


@torch.no_grad()
def apply_init(model: nn.Module, scheme: str) -> nn.Module:
    """Rescale `model`'s convolutions, drawn with the release's init by `conv`, to `scheme` (INITS)."""
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; use one of {', '.join(INITS)}")
    if scheme == "he":
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.mul_(math.sqrt(2.0))
    return model


class Leaky(nn.Module):
    """Leaky ReLU, in place. It always follows a convolution or dense layer, whose backward
    reads the layer's input, not its output; leaky_relu's own backward works from its
    result (slope > 0). Saves one activation-sized write and allocation per layer."""

    def forward(self, x):
        return F.leaky_relu(x, LEAK, inplace=True)


def encoder(arch: Arch, depth: int | None = None, generator: torch.Generator | None = None) -> nn.Sequential:
    """x (B, colors, 32, 32) -> code (B, latent, 32/2^s, 32/2^s).

    `depth` overrides arch.depth (the ACAI critic may use its own width); weights from `generator`.
    """
    def conv_leaky(cin: int, cout: int) -> list[nn.Module]:
        return [conv(cin, cout, generator=generator), Leaky()]

    depth = depth or arch.depth
    layers: list[nn.Module] = [conv(arch.colors, depth, 1, generator)]  # 1x1, no activation
    cin = depth
    for s in range(arch.scales):
        layers += conv_leaky(cin, depth << s) + conv_leaky(depth << s, depth << s) + [nn.AvgPool2d(2)]
        cin = depth << s
    layers += conv_leaky(cin, depth << arch.scales) + [conv(depth << arch.scales, arch.latent, generator=generator)]
    return nn.Sequential(*layers)


def decoder(arch: Arch, generator: torch.Generator | None = None) -> nn.Sequential:
    """code (B, latent, 32/2^s, 32/2^s) -> x̂ (B, colors, 32, 32), no output activation; weights from `generator`."""
    def conv_leaky(cin: int, cout: int) -> list[nn.Module]:
        return [conv(cin, cout, generator=generator), Leaky()]

    layers: list[nn.Module] = []
    cin = arch.latent
    for s in reversed(range(arch.scales)):
        layers += conv_leaky(cin, arch.depth << s) + conv_leaky(arch.depth << s, arch.depth << s)
        layers += [nn.Upsample(scale_factor=2, mode="nearest")]
        cin = arch.depth << s
    layers += conv_leaky(cin, arch.depth) + [conv(arch.depth, arch.colors, generator=generator)]
    return nn.Sequential(*layers)


def mse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements (tf.losses.mean_squared_error)."""
    return (x - target).pow(2).mean()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Images go channels-last: oneDNN's convolutions run 1.2-2x faster that way on CPU."""
    return x.to(device, non_blocking=True, memory_format=torch.channels_last) if x.dim() == 4 else x.to(device)


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """Restride (B, C, H, W) images channels-last for oneDNN; anything else is returned as it is.
    Inside torch.func.vmap (stacked seeds) a batched tensor is 5-d underneath and cannot take that
    layout: vmap turns the convolutions into grouped ones there, which choose their own layout."""
    if images.dim() != 4 or torch._C._functorch.is_batchedtensor(images):
        return images
    return images.to(memory_format=torch.channels_last)


@torch.no_grad()
def in_chunks(fn, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """fn over x in slices of `chunk` rows, concatenated: bounded memory for large evaluations."""
    return torch.cat([fn(x[i:i + chunk]) for i in range(0, len(x), chunk)])
