"""The seven autoencoders of the paper, and each of the six others with the ACAI regulariser, by name.

`build(name, arch, **hparams)` makes one; `hparams_class(name)` lists the
hyper-parameters it accepts, each defaulting to the released value.

A composed name "BASE+acai" is accepted iff BASE is in MODELS and is not
"acai" itself (which already is the baseline with the regulariser): the model
is regularizer.WithACAI around BASE, and its hyper-parameters are BASE's plus
lam, gamma and critic_depth (COMPOSED lists these names).
"""
from __future__ import annotations

import dataclasses

import torch

from ..nets import Arch
from .aae import AAE
from .acai import ACAI
from .baseline import Baseline
from .common import ModelDefinitionError, StepOutput, check_param_groups
from .denoising import Denoising
from .dropout import Dropout
from .hparams import ConfigError, Hparams, describe, hparam
from .regularizer import WithACAI, composed_hparams, regularize
from .vae import VAE
from .vqvae import VQVAE

MODELS = {
    "baseline": Baseline,
    "dropout": Dropout,
    "denoising": Denoising,
    "vae": VAE,
    "aae": AAE,
    "vqvae": VQVAE,
    "acai": ACAI,
}
REGULARIZED = "+acai"  # the suffix that adds the ACAI regulariser to a model
COMPOSED = {f"{name}{REGULARIZED}": name for name in MODELS if name != "acai"}  # composed name -> its base
NAMES = (*MODELS, *COMPOSED)  # every name `build` accepts
# Every name that is BASE with the ACAI regulariser -> BASE: the composed ones, and `acai`, which is
# `baseline+acai` update for update (tests/test_compose.py). Tables and benchmarks pair BASE with these.
WITH_ACAI = {**COMPOSED, "acai": "baseline"}
_COMPOSED_HPARAMS = {name: composed_hparams(MODELS[base].Hparams) for name, base in COMPOSED.items()}


def check_name(name: str) -> None:
    """ConfigError, in one line, unless `name` is one of NAMES."""
    if name in MODELS or name in COMPOSED:
        return
    base, _, rest = name.partition("+")
    if rest == REGULARIZED[1:] and base == "acai":
        raise ConfigError(f"acai already is the baseline with the ACAI regulariser, so {name!r} would add a second "
                          f"critic; use acai, or BASE+acai with BASE one of {', '.join(COMPOSED.values())}")
    if rest == REGULARIZED[1:]:
        raise ConfigError(f"unknown base model {base!r} in {name!r}; BASE+acai takes one of "
                          f"{', '.join(COMPOSED.values())}")
    raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}, or BASE{REGULARIZED} "
                      f"for BASE one of {', '.join(COMPOSED.values())}")


def base_model(name: str) -> str:
    """The model a name trains: "vae+acai" -> "vae", "vae" -> "vae"."""
    check_name(name)
    return COMPOSED.get(name, name)


def hparams_class(name: str) -> type:
    check_name(name)
    return _COMPOSED_HPARAMS[name] if name in COMPOSED else MODELS[name].Hparams


def make_hparams(name: str, overrides: dict | None = None):
    cls = hparams_class(name)
    known = {f.name: f for f in dataclasses.fields(cls)}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        allowed = ", ".join(known) or "none"
        raise ConfigError(f"model {name!r} has no hyper-parameter {', '.join(unknown)} (it has: {allowed})")
    try:
        return cls(**overrides)  # Hparams parses every value by its declared type and checks its range
    except ConfigError as error:
        raise ConfigError(f"model {name!r}: {error}") from None


def build(name: str, arch: Arch, generator: torch.Generator | None = None, **hparams):
    """The model `name` for `arch`, its weights drawn from `generator` (None: torch's global generator)."""
    hp = make_hparams(name, hparams)
    if name in COMPOSED:  # the base first, then the critic: the base's weights are those of the base alone
        model = WithACAI(MODELS[COMPOSED[name]](arch, hp.base, generator), hp.acai, generator)
    else:
        model = MODELS[name](arch, hp, generator)
    check_param_groups(model)
    return model


__all__ = ["COMPOSED", "MODELS", "NAMES", "Arch", "ConfigError", "Hparams", "ModelDefinitionError", "StepOutput",
           "WithACAI", "base_model", "build", "check_name", "check_param_groups", "describe", "hparam",
           "hparams_class", "make_hparams", "regularize"]
