"""Dropout autoencoder: dropout on the latent code during training (section 3.2)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..nets import mse
from .common import ConvAutoencoder, Pass, StepOutput, decode_alongside
from .hparams import Hparams, hparam


@dataclass
class DropoutHparams(Hparams):
    keep: float = hparam(0.5, gt=0, le=1)  # keep probability (release flag `dropout`)


class Dropout(ConvAutoencoder):
    Hparams = DropoutHparams

    def draw_noise(self, batch, generator, device, dtype):
        # Which code units survive: Bernoulli(keep) per unit, the mask F.dropout would draw.
        keep = torch.full((batch, self.arch.dz), self.hp.keep, device=device, dtype=dtype)
        return {"mask": torch.bernoulli(keep, generator=generator)}  # (B, d_z) of 0/1

    def training_pass(self, x, noise, mix=None):
        z = self.encode(x)  # (B, latent, h, w)
        # Inverted dropout on the flattened code, as tf.nn.dropout(keep_prob): kept units scaled by 1/keep.
        dropped = (z.flatten(1) * (noise["mask"] / self.hp.keep)).view_as(z)
        # Interpolation (evaluation) mixes the undropped codes z; training reconstructs the dropped one.
        reconstruction, mixed = decode_alongside(self.decode, dropped, None if mix is None else mix(z))
        return Pass(StepOutput(losses={"ae": mse(reconstruction, x)}, features=z), z, reconstruction, mixed)
