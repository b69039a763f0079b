"""VQ-VAE as released with the paper (van den Oord et al. 2017; SPEC 4).

The continuous code is flattened, projected to `num_latents` vectors of size
d_z, each snapped to its nearest codebook entry (straight-through gradient);
the codebook follows an exponential moving average of the vectors assigned to
it. Two dense layers map the quantised vectors back to a code for the decoder.
Interpolation mixes continuous codes and quantises the mixture.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..nets import dense, mse
from .common import ConvAutoencoder, Pass, StepOutput
from .hparams import Hparams, hparam


@dataclass
class VQVAEHparams(Hparams):
    codebook_log2: int = hparam(14, ge=1, le=20)  # 2^14 entries (release `z_log_size`); 2^20 is already 4 GB at d_z 1024
    num_latents: int = hparam(10, ge=1)
    commitment: float = hparam(10.0, ge=0)  # β (release `beta`)
    decay: float = hparam(0.999, ge=0, lt=1)  # EMA decay: at 1 the codebook would never move
    epsilon: float = hparam(1e-5, gt=0)  # Laplace smoothing of the EMA counts
    hidden: int = hparam(512, ge=1)  # release `filter_size`
    # Not the release's: the first training batch's projected vectors seed the codebook (each entry a copy of
    # one, plus the release's uniform draw as jitter) with the moving averages of a codebook used evenly.
    # The release's entries are ~20x shorter than the vectors of an encoder with He's init, so every vector
    # snaps to one of a few entries (one decoded image: the mean image), and the entries unused by the first
    # update get counts of 0 and values ~1e5x larger, out of reach for ~700 updates (SPEC 4's EMA).
    codebook_from_data: bool = hparam(False)


class VQVAE(ConvAutoencoder):
    Hparams = VQVAEHparams
    GROUPS = {"ae": ("encoder", "project", "hidden", "out", "decoder")}  # the codebook is a buffer (EMA)
    # encode() is the inherited encoder output: the release's `ops.encode` is the continuous code, and
    # its decode (like ours) projects and quantises whatever code it is given.
    CODES = "the continuous encoder output (before projection and quantisation)"

    def __init__(self, arch, hp=None, generator=None):
        super().__init__(arch, hp, generator)
        dz, entries = arch.dz, 1 << self.hp.codebook_log2
        self.project = dense(dz, self.hp.num_latents * dz, generator)
        self.hidden = dense(self.hp.num_latents * dz, self.hp.hidden, generator)
        self.out = dense(self.hp.hidden, dz, generator)
        # tf.uniform_unit_scaling_initializer: U(±sqrt(3 / fan_in)), fan_in = entries.
        limit = math.sqrt(3.0 / entries)
        self.register_buffer("codebook", torch.empty(entries, dz).uniform_(-limit, limit, generator=generator))
        self.register_buffer("ema_count", torch.zeros(entries))
        self.register_buffer("ema_sum", self.codebook.clone())
        if self.hp.codebook_from_data:  # 1 once the first training batch has seeded the codebook
            self.register_buffer("codebook_seeded", torch.zeros(()))

    @torch.autocast("cpu", enabled=False)
    @torch.autocast("cuda", enabled=False)
    def quantise(self, z, codebook=None):
        """z (B, latent, h, w) -> (decoder input (B, latent, h, w), vectors, nearest indices), snapped to
        `codebook` (default: the buffer).

        Always float32 (autocast off): the nearest-entry search among 2^14 close codebook
        entries and the EMA update are where bfloat16's 8-bit mantissa would change results."""
        codebook = self.codebook if codebook is None else codebook
        z = z.float()
        batch, dz = z.shape[0], self.arch.dz
        vectors = self.project(z.flatten(1)).view(batch * self.hp.num_latents, dz)  # (B·L, d_z)
        nearest = self.nearest_entries(vectors, codebook)
        quantised = codebook[nearest]
        straight_through = vectors + (quantised - vectors).detach()
        h = self.hidden(F.relu(straight_through.view(batch, -1)))  # (B, hidden)
        code = self.out(F.relu(h))  # (B, d_z)
        return code.view(z.shape), vectors, nearest

    @torch.no_grad()  # argmin passes no gradient: record nothing for autograd
    def nearest_entries(self, vectors, codebook=None):
        """vectors (N, d_z) -> index of each one's nearest entry of `codebook` (default: the buffer) (N,).

        ‖v - c‖² = ‖v‖² - 2v·c + ‖c‖², and ‖v‖² is the same for every entry c, so the
        nearest entry minimises ‖c‖² - 2v·c: one fused matmul-add over the scores."""
        codebook = self.codebook if codebook is None else codebook
        scores = torch.addmm(codebook.pow(2).sum(1), vectors, codebook.T, alpha=-2)  # (N, entries)
        return scores.argmin(dim=1)

    @torch.no_grad()
    def codebook_state(self, z) -> dict[str, torch.Tensor]:
        """The codebook and its moving averages this step starts from: the buffers, or, with
        codebook_from_data before the first update, entries seeded from this batch's codes z.

        Entry i copies vector i mod N of the batch's N projected vectors and keeps the release's uniform
        draw as jitter, so copies of one vector differ; every entry gets the count N/entries, the share of
        a codebook used evenly, so no entry's average starts at 0. Written with torch.where, not a
        Python branch, so that vmap can run it for stacked seeds."""
        state = {"codebook": self.codebook, "ema_count": self.ema_count, "ema_sum": self.ema_sum}
        if not self.hp.codebook_from_data:
            return state
        vectors = self.project(z.float().flatten(1)).view(-1, self.arch.dz)  # (N, d_z)
        entries = self.codebook.shape[0]
        copies = vectors[torch.arange(entries, device=z.device) % len(vectors)] + self.codebook  # (entries, d_z)
        count = torch.full_like(self.ema_count, len(vectors) / entries)
        seeded = {"codebook": copies, "ema_count": count, "ema_sum": copies * count[:, None]}
        done = self.codebook_seeded > 0
        return {name: torch.where(done, state[name], seeded[name]) for name in state}

    @torch.no_grad()
    def codebook_update(self, vectors, nearest, state=None) -> dict[str, torch.Tensor]:
        """EMA codebook step (decay, Laplace-smoothed counts), as the release: the new buffer values, from
        `state` (codebook_state; default: the buffers).

        Written out of place (scatter_add/index_add, no bincount or in-place
        writes) so that vmap can run it for several stacked models at once.
        """
        state = state or {"ema_count": self.ema_count, "ema_sum": self.ema_sum}
        d, entries = self.hp.decay, self.codebook.shape[0]
        counts = torch.zeros(entries, dtype=vectors.dtype, device=vectors.device).scatter_add(
            0, nearest, torch.ones_like(nearest, dtype=vectors.dtype))  # (entries,) vectors per entry
        sums = torch.zeros_like(state["ema_sum"]).index_add(0, nearest, vectors)  # (entries, d_z)
        ema_count = torch.add(state["ema_count"] * d, counts, alpha=1 - d)
        ema_sum = torch.add(state["ema_sum"] * d, sums, alpha=1 - d)
        n = ema_count.sum()
        smoothed = (ema_count + self.hp.epsilon) / (n + entries * self.hp.epsilon) * n
        updated = {"ema_count": ema_count, "ema_sum": ema_sum, "codebook": ema_sum / smoothed[:, None]}
        if self.hp.codebook_from_data:
            updated["codebook_seeded"] = torch.ones_like(self.codebook_seeded)
        return updated

    def decode(self, z):
        return self.decoder(self.quantise(z)[0])

    def features(self, x):
        return self.quantise(self.encode(x))[0]  # the release's probe reads the bottleneck output

    def training_pass(self, x, noise, mix=None):
        z = self.encode(x)  # (B, latent, h, w), continuous: interpolation mixes these, decode quantises
        batch = len(z)
        state = self.codebook_state(z)
        if mix is None:
            code, vectors, nearest = self.quantise(z, state["codebook"])
            reconstruction, mixed = self.decoder(code), None
        else:  # the mixtures are quantised and decoded in the same passes; only the batch's own
            # vectors enter the commitment loss and the codebook's moving average
            code, vectors, nearest = self.quantise(torch.cat([z, mix(z)]), state["codebook"])
            rows = batch * self.hp.num_latents
            vectors, nearest = vectors[:rows], nearest[:rows]
            reconstruction, mixed = self.decoder(code).split(batch)
            code = code[:batch]
        reconstruction_loss = mse(reconstruction, x)
        commitment = (vectors - state["codebook"][nearest]).pow(2).mean()  # ‖z - sg(q)‖²
        out = StepOutput(
            losses={"ae": reconstruction_loss + self.hp.commitment * commitment},
            features=code,
            logs={"mse": reconstruction_loss.detach(), "commitment": commitment.detach()},
            buffers=self.codebook_update(vectors.detach(), nearest, state),  # the trainer stores them after the step
        )
        return Pass(out, z, reconstruction, mixed)
