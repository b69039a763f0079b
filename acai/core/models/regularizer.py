"""The ACAI regulariser as a part: add it to any autoencoder (section 2.1; the paper's future work).

The paper closes: "we are interested in investigating whether our regularizer
improves the performance of autoencoders other than the standard 'vanilla'
autoencoder we applied it to". Here the regulariser is one piece:

* `Regularizer`: a critic d and the losses. The critic minimises eq. 1,
  ‖d(x̂_α) - α‖² + ‖d(γx + (1-γ)x̂)‖²; the autoencoder's own loss gains eq. 2's
  term λ‖d(x̂_α)‖², where x̂_α = g(α·z1 + (1-α)·z2) decodes a mixture of codes.
* `WithACAI(base, hp)`: any model of the registry with the regulariser, under the
  names `BASE+acai` (acai/core/models/__init__.py). The base's own losses stay as they
  are; its "ae" group's loss gains λ‖d(x̂_α)‖²; the critic is a group of its own,
  "critic", or "acai_critic" where the base already has a "critic" (the AAE).
* `regularize(encoder, decoder, image_shape)`: the same for an encode/decode pair
  of nn.Modules a user wrote (README, examples/own_model.py).

What is mixed is, for every base, what its interpolation mixes at evaluation
(`encode(x)`), so that the critic judges exactly the images the lines metrics
score; the mixtures are decoded in the base's own decoder pass (`training_pass`,
acai/core/models/common.py), so the regulariser costs one decoder pass over B more
codes and the critic over B mixtures and B blends, never a second forward of the base:

  baseline   the encoder output z (then `baseline+acai` is `acai`, update for update)
  dropout    the undropped code z; the reconstruction the critic's blend uses is the
             training one, decoded from the dropped code
  denoising  the code of the clean image (the release probes and interpolates it); the
             clean pass, which the base runs for its probe anyway, keeps its graph; the
             blend uses the reconstruction of the noisy image
  vae        the sampled code z = μ + σ·ε of the training step (the release's
             interpolation), or μ with interpolate_mean=True; mixtures decode to
             2·sigmoid(logits) - 1, as decode does
  aae        the encoder output z (the code its latent critic sees)
  vqvae      the continuous pre-quantisation codes; the mixtures are quantised (with the
             straight-through gradient) and decoded, as its interpolation does; only the
             batch's own vectors enter the commitment loss and the codebook's average

α ~ U[0, 1] is drawn by draw_noise after the base's own draws and folded to
[0, 0.5]; each code is mixed with the reversed batch's, as ACAI does.
Hyper-parameters: the base's plus lam (λ, 0.5), gamma (γ, 0.2) and
critic_depth (None: the autoencoder's depth), the release's values; a base
that had a field of one of these names would be a ModelDefinitionError.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..nets import Arch, channels_last, encoder
from .acai import ACAIHparams, critic_loss, fold_alpha
from .common import ModelDefinitionError, StepOutput
from .hparams import Hparams

ALPHA = "alpha"  # the regulariser's key in a step's noise


@dataclass
class RegularizerTerms:
    """What the regulariser adds to one step."""

    ae_term: torch.Tensor  # λ·mean(d(x̂_α)²): add it to the autoencoder's loss (eq. 2)
    critic_loss: torch.Tensor  # eq. 1, for the critic's weights only
    critic_on_mix: torch.Tensor  # mean |d(x̂_α)|, detached, a log


class Regularizer(nn.Module):
    """A critic d: images (B, ...) -> (B,), and the losses of eq. 1 and eq. 2's λ term."""

    def __init__(self, critic: nn.Module, lam: float = 0.5, gamma: float = 0.2):
        super().__init__()
        self.critic, self.lam, self.gamma = critic, lam, gamma

    def critique(self, images: torch.Tensor) -> torch.Tensor:
        out = self.critic(channels_last(images))  # oneDNN's layout (see acai.core.models.acai.ACAI.critique)
        return out.mean(dim=tuple(range(1, out.dim()))) if out.dim() > 1 else out  # (B,)

    @staticmethod
    def mix(code: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """α·z + (1-α)·z', z' the reversed batch's code; code (B, ...), alpha (B) folded, in any shape."""
        alpha = alpha.reshape(len(code), *[1] * (code.dim() - 1))
        return alpha * code + (1 - alpha) * code.flip(0)

    def terms(self, x: torch.Tensor, reconstruction: torch.Tensor, mixed: torch.Tensor,
              alpha: torch.Tensor) -> RegularizerTerms:
        """x, reconstruction, mixed: (B, ...) images; alpha: the (B) folded coefficients of `mixed`.
        The critic reads the mixtures, then the blends γx + (1-γ)x̂ with x̂ detached: eq. 1 trains the critic
        only, so only the mixtures' critic pass needs a path back into the autoencoder (as ACAI does)."""
        batch = len(x)
        d_mix = self.critique(mixed)
        d_blend = self.critique(self.gamma * x + (1 - self.gamma) * reconstruction.detach())
        return RegularizerTerms(self.lam * d_mix.pow(2).mean(), critic_loss(d_mix, alpha.reshape(batch), d_blend),
                                d_mix.detach().abs().mean())


def draw_alpha(batch: int, generator: torch.Generator, device, dtype) -> torch.Tensor:
    return torch.rand(batch, 1, 1, 1, generator=generator, device=device, dtype=dtype)  # U[0, 1], as ACAI draws it


class WithACAI(nn.Module):
    """A model of the registry with the ACAI regulariser; the same model interface (common.py).

    `base` is built first and the critic after it, from the same generator, so the base's weights
    are those of the base alone and `WithACAI(Baseline)` has exactly ACAI's weights."""

    def __init__(self, base: nn.Module, hp: ACAIHparams | None = None, generator: torch.Generator | None = None):
        super().__init__()
        if "ae" not in base.GROUPS:
            raise ModelDefinitionError(f"{type(base).__name__} has no 'ae' group for eq. 2's term to join")
        self.base = base
        self.hp = hp if hp is not None else ACAIHparams()
        self.arch = base.arch
        self.regularizer = Regularizer(encoder(base.arch, depth=self.hp.critic_depth, generator=generator),
                                       self.hp.lam, self.hp.gamma)
        self.critic_group = "acai_critic" if "critic" in base.GROUPS else "critic"
        self.GROUPS = {**{group: tuple(f"base.{name}" for name in modules) for group, modules in base.GROUPS.items()},
                       self.critic_group: ("regularizer",)}

    # The codes and the prior are the base's: the regulariser adds a critic, not a latent space.
    @property
    def CODES(self) -> str:
        return self.base.CODES

    @property
    def PRIOR(self):
        return self.base.PRIOR

    def random_codes(self, count, generator):
        return self.base.random_codes(count, generator)

    def encode(self, x, generator=None):
        return self.base.encode(x, generator)

    def decode(self, z):
        return self.base.decode(z)

    def features(self, x):
        return self.base.features(x)

    def param_groups(self):
        return {**self.base.param_groups(), self.critic_group: {"params": list(self.regularizer.parameters())}}

    def draw_noise(self, batch, generator, device, dtype):
        noise = self.base.draw_noise(batch, generator, device, dtype)  # the base's draws first
        if ALPHA in noise:
            raise ModelDefinitionError(f"{type(self.base).__name__} draws noise named {ALPHA!r}, the regulariser's")
        return {**noise, ALPHA: draw_alpha(batch, generator, device, dtype)}

    def training_losses(self, x, noise):
        alpha = fold_alpha(noise[ALPHA])  # (B, 1, 1, 1) in [0, 0.5]
        own = {name: value for name, value in noise.items() if name != ALPHA}
        step = self.base.training_pass(x, own, mix=lambda code: Regularizer.mix(code, alpha))
        terms = self.regularizer.terms(x, step.reconstruction, step.mixed, alpha)
        out = step.out
        return StepOutput(losses={**out.losses, "ae": out.losses["ae"] + terms.ae_term,
                                  self.critic_group: terms.critic_loss},
                          features=out.features, logs={**out.logs, "critic_on_mix": terms.critic_on_mix},
                          buffers={f"base.{name}": value for name, value in out.buffers.items()})


def composed_hparams(base_hparams: type) -> type:
    """The hyper-parameters of BASE+acai, flat: the base's fields, then ACAI's (lam, gamma, critic_depth).
    -> a dataclass whose `base` and `acai` properties give the two parts, each as its own class
    (which validates it, e.g. dropout's keep, when the composed one is made)."""
    base_fields, acai_fields = dataclasses.fields(base_hparams), dataclasses.fields(ACAIHparams)
    clash = {f.name for f in base_fields} & {f.name for f in acai_fields}
    if clash:
        raise ModelDefinitionError(f"{base_hparams.__name__} has the fields {', '.join(sorted(clash))}, which the "
                                   f"ACAI regulariser also names; rename them")

    def copy(f):  # the field with its declared type and range (metadata)
        if f.default_factory is not dataclasses.MISSING:
            return f.name, f.type, dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)
        return f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata)

    def part(self, cls):
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})

    def post_init(self):
        Hparams.__post_init__(self)  # every field parsed by its declared type and range
        self.base, self.acai  # and each part checks itself as a whole

    namespace = {"__post_init__": post_init,
                 "base": property(lambda self: part(self, base_hparams)),
                 "acai": property(lambda self: part(self, ACAIHparams))}
    cls = dataclasses.make_dataclass(f"{base_hparams.__name__.removesuffix('Hparams')}WithACAIHparams",
                                     [copy(f) for f in (*base_fields, *acai_fields)], bases=(Hparams,),
                                     namespace=namespace)
    cls.__module__ = __name__
    return cls


@dataclass
class OwnStep:
    """One step of `Regularized`: the code and reconstruction, and the regulariser's terms."""

    code: torch.Tensor  # (B, ...) encoder(x)
    reconstruction: torch.Tensor  # (B, *image_shape) decoder(code)
    mixed: torch.Tensor  # (B, *image_shape) decoder(mix of codes)
    ae_term: torch.Tensor  # λ·mean(d(x̂_α)²): add it to your autoencoder's loss
    critic_loss: torch.Tensor  # eq. 1: the critic's loss


class Regularized(nn.Module):
    """Your encoder and decoder with the ACAI regulariser (made by `regularize`).

    model(x, u) with u ~ U[0, 1] of shape (B,) -> OwnStep, from one encoder pass, one decoder
    pass over the codes and their mixtures, and the critic over the mixtures and the blends. model.backward(ae_loss,
    critic_loss) sets the gradients: ae_loss's of the autoencoder's parameters only and
    critic_loss's of the critic's only (eq. 2's term reaches the critic's weights too, and eq. 1
    the autoencoder's; neither may be applied there). encode/decode make it a model that
    acai.core.evaluations.lines_interpolations can score."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, regularizer: Regularizer):
        super().__init__()
        self.encoder, self.decoder, self.regularizer = encoder, decoder, regularizer

    @property
    def critic(self) -> nn.Module:
        return self.regularizer.critic

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def encode(self, x, generator=None):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> OwnStep:
        alpha = fold_alpha(u)
        code = self.encoder(x)
        batch = len(x)
        reconstruction, mixed = self.decoder(torch.cat([code, Regularizer.mix(code, alpha)])).split(batch)
        terms = self.regularizer.terms(x, reconstruction, mixed, alpha)
        return OwnStep(code, reconstruction, mixed, terms.ae_term, terms.critic_loss)

    def backward(self, ae_loss: torch.Tensor, critic_loss: torch.Tensor) -> None:
        """Set (not accumulate) .grad: the autoencoder's from ae_loss, the critic's from critic_loss."""
        for loss, params, keep in ((ae_loss, self.autoencoder_parameters(), True),
                                   (critic_loss, list(self.critic.parameters()), False)):
            grads = torch.autograd.grad(loss, params, retain_graph=keep, allow_unused=True)
            for param, grad in zip(params, grads):
                param.grad = grad


def image_critic(image_shape: tuple[int, ...], depth: int = 16, latent: int = 16,
                 generator: torch.Generator | None = None) -> nn.Sequential:
    """The critic of appendix B for images of shape (C, H, W): the encoder architecture, halving the
    resolution as often as leaves at least 2x2 (at most 4 times, as on lines); its output is averaged."""
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (channels, height, width), got {tuple(image_shape)}; "
                         f"for other data pass your own critic=")
    colors, height, width = image_shape
    scales = max(0, min(4, int(math.log2(min(height, width))) - 1))
    return encoder(Arch(scales=scales, depth=depth, latent=latent, colors=colors, size=max(height, width)),
                   generator=generator)


def regularize(encoder: nn.Module, decoder: nn.Module, image_shape: tuple[int, ...], lam: float = 0.5,
               gamma: float = 0.2, critic: nn.Module | None = None, critic_depth: int = 16,
               generator: torch.Generator | None = None) -> Regularized:
    """Add the ACAI regulariser to your own encode/decode pair.

    encoder: x (B, *image_shape) -> code (B, ...); decoder: code -> x̂ (B, *image_shape), images in
    the range your data has (the critic compares them with x). The critic is `image_critic`
    (appendix B's encoder, `critic_depth` wide, built for image_shape), or your own `critic`
    module: images -> (B, ...) scores, averaged per image. lam, gamma: λ of eq. 2, γ of eq. 1
    (the release's 0.5, 0.2). The critic's weights are drawn from `generator` (None: torch's global one).
    """
    ACAIHparams(lam=lam, gamma=gamma, critic_depth=critic_depth)  # the ranges `--hp` has: a ConfigError otherwise
    if not (isinstance(image_shape, (tuple, list)) and image_shape
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in image_shape)):
        raise ValueError(f"image_shape must be the shape of one image, e.g. (1, 32, 32) (channels, height, width), "
                         f"got {image_shape!r}")
    image_shape = tuple(image_shape)
    critic = critic if critic is not None else image_critic(image_shape, critic_depth, generator=generator)
    model = Regularized(encoder, decoder, Regularizer(critic, lam, gamma))
    check_fit(model, image_shape)
    return model


def _forward(part, x, what: str, remedy: str):
    """part(x), or a ValueError "WHAT: the error's first line; REMEDY" when the part cannot take x."""
    try:
        return part(x)
    except Exception as error:
        raise ValueError(f"{what}: {_first_line(error)}; {remedy}") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200]}" if text else type(error).__name__


def _placement(*modules: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the first floating-point weight of `modules` lives (the CPU in float32 if they have none)."""
    for module in modules:
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            if tensor.is_floating_point():
                return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.get_default_dtype()


@torch.no_grad()
def check_fit(model: Regularized, image_shape: tuple[int, ...]) -> None:
    """Two blank images through the encoder, the decoder and the critic, once, so that a wrong
    `image_shape` or a pair that does not fit fails now with a ValueError saying which part does not
    fit what, not with a raw shape error at the first training step. In eval mode (no batch-norm
    statistics move) and with the random state forked: the check changes nothing of the model's or of
    the caller's random numbers."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            device, dtype = _placement(model.encoder, model.decoder)
            x = torch.zeros(2, *image_shape, device=device, dtype=dtype)
            code = _forward(model.encoder, x, f"the encoder does not take images of image_shape {image_shape} (a "
                            f"batch of shape {tuple(x.shape)})",
                            "pass as image_shape the shape of one image the encoder reads")
            if not isinstance(code, torch.Tensor) or code.dim() < 1 or len(code) != len(x):
                got = tuple(code.shape) if isinstance(code, torch.Tensor) else type(code).__name__
                raise ValueError(f"the encoder must return a tensor with one code per image; for a batch of shape "
                                 f"{tuple(x.shape)} it returned {got}")
            out = _forward(model.decoder, code, f"the decoder does not take the encoder's codes (shape "
                           f"{tuple(code.shape[1:])} per image)", "the decoder must read what the encoder returns")
            got = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else type(out).__name__
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), *image_shape):
                raise ValueError(f"the decoder returns images of shape {got}, but image_shape is {image_shape}: "
                                 f"it must give back images of the shape the encoder reads")
            critic_device, critic_dtype = _placement(model.critic)
            try:
                score = model.regularizer.critique(out.to(critic_device, critic_dtype))
            except Exception as error:
                raise ValueError(f"the critic does not take images of image_shape {image_shape}: "
                                 f"{_first_line(error)}") from None
            if score.dim() != 1 or len(score) != len(x):
                raise ValueError(f"the critic must give one score per image (averaged over any other axes); for "
                                 f"{len(x)} images it gave shape {tuple(score.shape)}")
    finally:
        for module, training in modes:
            module.training = training
