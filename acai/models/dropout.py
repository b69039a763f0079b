"""Dropout autoencoder: dropout on the latent code during training (section 3.2)."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from ..nets import mse
from .common import ConvAutoencoder, StepOutput


@dataclass
class DropoutHparams:
    keep: float = 0.5  # keep probability (release flag `dropout`)

    def __post_init__(self):
        if not 0 < self.keep <= 1:
            raise ValueError(f"keep must be in (0, 1], got {self.keep}")


class Dropout(ConvAutoencoder):
    Hparams = DropoutHparams

    def training_losses(self, x):
        z = self.encode(x)  # (B, latent, h, w)
        # Inverted dropout on the flattened code, as tf.nn.dropout(keep_prob).
        dropped = F.dropout(z.flatten(1), p=1 - self.hp.keep, training=True).view_as(z)
        return StepOutput(losses={"ae": mse(self.decode(dropped), x)}, features=z)
