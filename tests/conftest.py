from pathlib import Path

import numpy as np
import pytest
import torch

from acai.training.config import TrainConfig
from acai.core.models import base_model
from acai.core.nets import Arch

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "lines_public.npz"
TINY = Arch(scales=2, depth=4, latent=4, colors=1)  # d_z 64, fast enough for hundreds of steps

# The one place for tiny runs: a small network, a short budget, few evaluation pairs, and each
# model's own small settings (a 64-entry codebook instead of 2^14 for the VQ-VAE).
TINY_SETTINGS = dict(scales=TINY.scales, depth=TINY.depth, latent=TINY.latent, samples=256, batch=16,
                     eval_every=128, eval_pairs=8, checkpoint_seconds=1e9, seed=1)
SMALL_HPARAMS = {"vqvae": {"codebook_log2": 6}}  # by base model: vqvae+acai gets the same


def tiny_config(model: str = "acai", **overrides) -> TrainConfig:
    """A TrainConfig that trains in a fraction of a second; `overrides` replace any field."""
    values = {**TINY_SETTINGS, "hparams": dict(SMALL_HPARAMS.get(base_model(model), {})), **overrides}
    return TrainConfig(model=model, **values)


def tiny_sweep(what: str, out, lines: bool = True, **options):
    """A SweepSpec of the quick preset whose every run is tiny (on lines also a tiny network;
    on images the data set's own scales and latent size, at depth 4)."""
    from acai.reproduce.plan import SweepSpec
    from acai.reproduce.presets import PRESETS

    keys = ("samples", "batch", "eval_every", "eval_pairs", "checkpoint_seconds", "depth")
    overrides = {key: TINY_SETTINGS[key] for key in keys + (("scales", "latent") if lines else ())}
    overrides.update(options.pop("overrides", {}))
    return SweepSpec(what=what, out=out, preset=PRESETS["quick"], seeds=options.pop("seeds", 1), overrides=overrides,
                     **options)


def tiny_args(model: str = "acai", **overrides) -> list[str]:
    """The same settings as `acai train` flags (without --model and --out)."""
    values = {k: v for k, v in {**TINY_SETTINGS, **overrides}.items() if k not in ("checkpoint_seconds", "eval_pairs")}
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in values.items()]
    return flags + [f"--hp={k}={v}" for k, v in SMALL_HPARAMS.get(base_model(model), {}).items()] + ["--quiet"]


def kill_midway(config: TrainConfig, out) -> None:
    """Train `config` into `out` and die on the way to its third evaluation, as a killed process
    would (the fault comes through the loop's hook, not a patched module)."""
    from acai.training.loop import Hooks, train

    def die(step):
        if step == 2 * config.eval_every_steps + 3:
            raise SystemExit("killed")

    with pytest.raises(SystemExit):
        train([config], [out], progress=False, hooks=Hooks(after_step=die))[0]


@pytest.fixture(scope="session")
def reference():
    if not REFERENCE.exists():
        pytest.skip(f"reference vectors not found at {REFERENCE}")
    return dict(np.load(REFERENCE))


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
