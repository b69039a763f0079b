"""Baseline autoencoder: reconstruction only (paper section 3.2)."""
from __future__ import annotations

from ..nets import mse
from .common import ConvAutoencoder, Pass, StepOutput, decode_alongside


class Baseline(ConvAutoencoder):
    def training_pass(self, x, noise, mix=None):
        z = self.encode(x)  # (B, latent, h, w)
        reconstruction, mixed = decode_alongside(self.decode, z, None if mix is None else mix(z))
        return Pass(StepOutput(losses={"ae": mse(reconstruction, x)}, features=z), z, reconstruction, mixed)
