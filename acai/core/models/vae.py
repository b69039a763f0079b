"""Variational autoencoder with a Bernoulli decoder (section 3.2, SPEC 4).

Pixels x in [-1, 1] are read as Bernoulli probabilities (x + 1)/2; the decoder
gives their logits and images are shown as 2·sigmoid(logits) - 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..nets import dense
from .common import ConvAutoencoder, Pass, StepOutput, decode_alongside
from .hparams import Hparams, hparam


@dataclass
class VAEHparams(Hparams):
    beta: float = hparam(1.0, ge=0)  # weight of the KL term
    interpolate_mean: bool = hparam(False)  # the release interpolates sampled codes z, not μ


class VAE(ConvAutoencoder):
    Hparams = VAEHparams
    GROUPS = {"ae": ("encoder", "to_mu", "to_log_var", "decoder")}
    CODES = "the sampled code z = mu + sigma * eps (mu with interpolate_mean)"
    PRIOR = "N(0, I)"

    def __init__(self, arch, hp=None, generator=None):
        super().__init__(arch, hp, generator)
        self.to_mu = dense(arch.dz, arch.dz, generator)
        self.to_log_var = dense(arch.dz, arch.dz, generator)

    def posterior(self, x):
        h = self.encoder(x)  # (B, latent, h, w)
        flat = h.flatten(1)  # (B, d_z)
        return h, self.to_mu(flat), self.to_log_var(flat)

    def sample(self, mu, log_var, eps):
        """Reparameterised z = μ + σ·ε with ε ~ N(0, I) of shape (B, d_z) -> (B, latent, h, w)."""
        return (mu + torch.exp(0.5 * log_var) * eps).view(-1, *self.arch.latent_shape)

    def encode(self, x, generator=None):
        """The sampled code z (the release's `ops.encode`), or μ with interpolate_mean.

        ε is drawn with `generator`: randomness is an input here as in training."""
        _, mu, log_var = self.posterior(x)
        if self.hp.interpolate_mean:
            return mu.view(-1, *self.arch.latent_shape)
        if generator is None:
            raise ValueError("the VAE's code is a sample z = μ + σ·ε: pass encode(x, generator) "
                             "(a torch.Generator on x's device), or build it with interpolate_mean=True")
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return self.sample(mu, log_var, eps)

    def decode(self, z):
        return image(self.decoder(z))

    def features(self, x):
        return self.encoder(x)  # the release's probe reads the encoder output h

    def draw_noise(self, batch, generator, device, dtype):
        return {"eps": torch.randn(batch, self.arch.dz, generator=generator, device=device, dtype=dtype)}

    def training_pass(self, x, noise, mix=None):
        h, mu, log_var = self.posterior(x)
        z = self.sample(mu, log_var, noise["eps"])  # (B, latent, h, w), the training sample
        code = mu.view_as(z) if self.hp.interpolate_mean else z  # what encode(x) gives: interpolation mixes it
        logits, mixed_logits = decode_alongside(self.decoder, z, None if mix is None else mix(code))  # (B, C, H, W)
        batch = x.shape[0]
        # -log p(x|z), summed over pixels, averaged over the batch.
        nll = F.binary_cross_entropy_with_logits(logits, (x + 1) / 2, reduction="sum") / batch
        # KL(q(z|x) || N(0, I)) = ½ Σ(-log σ² - 1 + σ² + μ²), averaged over the batch.
        kl = 0.5 * (-log_var - 1 + log_var.exp() + mu.pow(2)).sum() / batch
        out = StepOutput(losses={"ae": nll + self.hp.beta * kl}, features=h, logs={"nll": nll, "kl": kl})
        return Pass(out, code, image(logits), None if mixed_logits is None else image(mixed_logits))


def image(logits):
    """Bernoulli logits -> the image they show, 2·sigmoid(logits) - 1 in [-1, 1]."""
    return 2 * torch.sigmoid(logits) - 1
