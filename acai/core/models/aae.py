"""Adversarial autoencoder (Makhzani et al. 2015; section 3.2, SPEC 4).

A critic on the latent code tells encoder outputs (label 0) from samples of
the prior N(0, I) (label 1); the encoder is trained to fool it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..nets import Leaky, dense, mse
from .common import ConvAutoencoder, Pass, StepOutput, decode_alongside
from .hparams import Hparams, hparam


@dataclass
class AAEHparams(Hparams):
    critic_sizes: tuple[int, ...] = hparam((100, 100), ge=1)  # hidden dense layers (release `disc_layer_sizes`)
    critic_lr: float = hparam(1e-4, gt=0)  # release `adversary_lr`
    adversarial_weight: float = hparam(1.0, ge=0)


def latent_critic(dz: int, sizes, generator: torch.Generator | None = None) -> nn.Sequential:
    layers, width = [nn.Flatten()], dz
    for size in sizes:
        layers += [dense(width, size, generator), Leaky()]
        width = size
    return nn.Sequential(*layers, dense(width, 1, generator))  # logit (B, 1)


class AAE(ConvAutoencoder):
    Hparams = AAEHparams
    GROUPS = {"ae": ("encoder", "decoder"), "critic": ("critic",)}
    PRIOR = "N(0, I)"  # the critic pulls the encoder output towards it

    def __init__(self, arch, hp=None, generator=None):
        super().__init__(arch, hp, generator)
        self.critic = latent_critic(arch.dz, self.hp.critic_sizes, generator)

    def param_groups(self):
        groups = super().param_groups()
        groups["critic"]["lr"] = self.hp.critic_lr  # the release's `adversary_lr`, its own rate
        return groups

    def draw_noise(self, batch, generator, device, dtype):
        return {"prior": torch.randn(batch, *self.arch.latent_shape, generator=generator, device=device, dtype=dtype)}

    def training_pass(self, x, noise, mix=None):
        z = self.encode(x)  # (B, latent, h, w)
        reconstruction, mixed = decode_alongside(self.decode, z, None if mix is None else mix(z))
        prior = noise["prior"]  # (B, latent, h, w) from N(0, I)
        logit_code, logit_prior = self.critic(torch.cat([z, prior])).chunk(2)  # (B, 1) each
        zeros, ones = torch.zeros_like(logit_code), torch.ones_like(logit_code)
        critic_loss = (F.binary_cross_entropy_with_logits(logit_code, zeros)
                       + F.binary_cross_entropy_with_logits(logit_prior, ones))
        fool = F.binary_cross_entropy_with_logits(logit_code, ones)
        reconstruction_loss = mse(reconstruction, x)
        out = StepOutput(
            losses={"ae": reconstruction_loss + self.hp.adversarial_weight * fool, "critic": critic_loss},
            features=z,
            logs={"mse": reconstruction_loss, "fool": fool},
        )
        return Pass(out, z, reconstruction, mixed)
