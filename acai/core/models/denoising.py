"""Denoising autoencoder: reconstruct x from x + N(0, σ²) (section 3.2)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..nets import mse
from .common import ConvAutoencoder, Pass, StepOutput, decode_alongside
from .hparams import Hparams, hparam


@dataclass
class DenoisingHparams(Hparams):
    noise: float = hparam(1.0, ge=0)  # σ of the additive Gaussian noise (release flag `noise`)


class Denoising(ConvAutoencoder):
    Hparams = DenoisingHparams

    def draw_noise(self, batch, generator, device, dtype):
        shape = (self.arch.colors, self.arch.size, self.arch.size)
        return {"pixels": torch.randn(batch, *shape, generator=generator, device=device, dtype=dtype)}  # N(0, 1)

    def training_pass(self, x, noise, mix=None):
        noisy = x + self.hp.noise * noise["pixels"]
        noisy_code = self.encode(noisy)
        # The release's probe reads the code of the clean image, gradient stopped; interpolation mixes
        # clean codes too, so with `mix` that pass keeps its graph for the mixtures' loss.
        with torch.set_grad_enabled(mix is not None and torch.is_grad_enabled()):
            clean_code = self.encode(x)
        reconstruction, mixed = decode_alongside(self.decode, noisy_code, None if mix is None else mix(clean_code))
        return Pass(StepOutput(losses={"ae": mse(reconstruction, x)}, features=clean_code), clean_code,
                    reconstruction, mixed)
