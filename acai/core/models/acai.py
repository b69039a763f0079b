"""ACAI: adversarially constrained autoencoder interpolation (section 2.1).

A critic d sees decoded mixtures x̂_α = g(α·z1 + (1-α)·z2) and must recover α
(eq. 1); the autoencoder is rewarded when d answers 0, i.e. when mixtures look
like real data (eq. 2).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..nets import channels_last, encoder, mse
from .common import ConvAutoencoder, StepOutput
from .hparams import Hparams, hparam


@dataclass
class ACAIHparams(Hparams):
    lam: float = hparam(0.5, ge=0)  # λ of eq. 2 (release `advweight`)
    gamma: float = hparam(0.2, ge=0, le=1)  # γ of eq. 1 (release `reg`), a mixing weight
    critic_depth: int | None = hparam(None, ge=1)  # release `advdepth`; None = the autoencoder's depth


def fold_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """U[0, 1] -> [0, 0.5]: α and 1-α give the same mixture up to the pair's order."""
    return 0.5 - (alpha - 0.5).abs()


def critic_loss(d_mix, alpha, d_blend):
    """Eq. 1: ‖d(x̂_α) - α‖² + ‖d(γx + (1-γ)x̂)‖², each a mean over the batch."""
    return (d_mix - alpha).pow(2).mean() + d_blend.pow(2).mean()


def autoencoder_loss(reconstruction, x, d_mix, lam):
    """Eq. 2: ‖x - g(f(x))‖² + λ‖d(x̂_α)‖²."""
    return mse(reconstruction, x) + lam * d_mix.pow(2).mean()


class ACAI(ConvAutoencoder):
    Hparams = ACAIHparams
    GROUPS = {"ae": ("encoder", "decoder"), "critic": ("critic",)}

    def __init__(self, arch, hp=None, generator=None):
        super().__init__(arch, hp, generator)
        self.critic = encoder(arch, depth=self.hp.critic_depth, generator=generator)

    def critique(self, images):
        # channels-last for oneDNN, as every other network input: a 1-channel image passes for either
        # layout, and a blend computed from NCHW-strided pieces sent the critic's first scale down the
        # slow path with 5 layout copies a step (benchmarks: 0.66 -> 0.80 of the release's speed).
        return self.critic(channels_last(images)).mean(dim=(1, 2, 3))  # (B, C, H, W) -> (B,)

    def draw_noise(self, batch, generator, device, dtype):
        return {"alpha": torch.rand(batch, 1, 1, 1, generator=generator, device=device, dtype=dtype)}  # U[0, 1]

    def training_losses(self, x, noise):
        batch = x.shape[0]
        z = self.encode(x)  # (B, latent, h, w)
        alpha = fold_alpha(noise["alpha"])  # (B, 1, 1, 1)
        z_mix = alpha * z + (1 - alpha) * z.flip(0)  # each code with the reversed batch's
        reconstruction, x_mix = self.decode(torch.cat([z, z_mix])).split(batch)  # one decoder pass
        d_mix = self.critique(x_mix)  # (B,): eq. 1 and eq. 2 both read it
        # The blend enters eq. 1 only, whose gradient trains the critic only (the release's
        # var_list=disc_vars): with x̂ detached the autoencoder's backward crosses the critic for the B
        # mixtures alone, not for 2B images.
        blend = self.hp.gamma * x + (1 - self.hp.gamma) * reconstruction.detach()
        d_blend = self.critique(blend)  # (B,)
        alpha = alpha.view(batch)
        return StepOutput(
            losses={"ae": autoencoder_loss(reconstruction, x, d_mix, self.hp.lam),
                    "critic": critic_loss(d_mix, alpha, d_blend)},
            features=z,
            logs={"critic_on_mix": d_mix.detach().abs().mean()},
        )
