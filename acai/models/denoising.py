"""Denoising autoencoder: reconstruct x from x + N(0, σ²) (section 3.2)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..nets import mse
from .common import ConvAutoencoder, StepOutput
from .hparams import Hparams, hparam


@dataclass
class DenoisingHparams(Hparams):
    noise: float = hparam(1.0, ge=0)  # σ of the additive Gaussian noise (release flag `noise`)


class Denoising(ConvAutoencoder):
    Hparams = DenoisingHparams

    def draw_noise(self, batch, generator, device, dtype):
        shape = (self.arch.colors, self.arch.size, self.arch.size)
        return {"pixels": torch.randn(batch, *shape, generator=generator, device=device, dtype=dtype)}  # N(0, 1)

    def training_losses(self, x, noise):
        noisy = x + self.hp.noise * noise["pixels"]
        reconstruction = self.decode(self.encode(noisy))  # (B, C, H, W)
        with torch.no_grad():  # the release's probe reads the code of the clean image
            clean_code = self.encode(x)
        return StepOutput(losses={"ae": mse(reconstruction, x)}, features=clean_code)
