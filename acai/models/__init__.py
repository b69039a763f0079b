"""The seven autoencoders of the paper, chosen by name.

`build(name, arch, **hparams)` makes one; `MODELS[name].Hparams` lists the
hyper-parameters it accepts, each defaulting to the released value.
"""
from __future__ import annotations

import dataclasses

from ..nets import Arch
from .aae import AAE
from .acai import ACAI
from .baseline import Baseline
from .common import ModelDefinitionError, StepOutput, check_param_groups
from .denoising import Denoising
from .dropout import Dropout
from .hparams import ConfigError, Hparams, describe, hparam
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


def make_hparams(name: str, overrides: dict | None = None):
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    cls = MODELS[name].Hparams
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


def build(name: str, arch: Arch, **hparams):
    model = MODELS[name](arch, make_hparams(name, hparams))
    check_param_groups(model)
    return model


__all__ = ["MODELS", "Arch", "ConfigError", "Hparams", "ModelDefinitionError", "StepOutput", "build",
           "check_param_groups", "describe", "hparam", "make_hparams"]
