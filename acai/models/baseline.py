"""Baseline autoencoder: reconstruction only (paper section 3.2)."""
from __future__ import annotations

from ..nets import mse
from .common import ConvAutoencoder, StepOutput


class Baseline(ConvAutoencoder):
    def training_losses(self, x, noise):
        z = self.encode(x)  # (B, latent, h, w)
        return StepOutput(losses={"ae": mse(self.decode(z), x)}, features=z)
