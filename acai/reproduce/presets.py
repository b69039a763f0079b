"""Presets: how long each run of a reproduction trains, with which recipe, and how it is reported.

A `Recipe` is how runs learn: the TrainConfig fields it changes from the paper's
(Adam 1e-4, batch 64, a constant rate; SPEC 3), for every model and per model.
A `Budget` is what one run of a data set trains and reports. A `Preset` holds
the lines budget and the image budget. Everything is built by keyword and
checked when it is made: recipe keys against TrainConfig's fields, per-model
keys against the model registry, hyper-parameters against the model's own.
The measurements behind each value are in docs/results.md and docs/speed.md.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from acai.core.data import Kind, describe_data
from acai.core.models import COMPOSED, MODELS, make_hparams
from acai.training.config import BFLOAT16_CHECKED, ConfigError, TrainConfig

# What a recipe may change: how a run learns. Its identity (model, data, seed), its budget and
# evaluation schedule (the Budget's), and where it runs are not a recipe's to set.
RECIPE_FIELDS = ("batch", "lr", "lr_warmup", "lr_decay", "lr_decay_over", "group_lr", "init", "hparams")


def _check_fields(values: dict, where: str) -> None:
    unknown = sorted(set(values) - set(RECIPE_FIELDS))
    if unknown:
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        what = "not a recipe's to set" if set(unknown) <= known else "not TrainConfig fields"
        raise ConfigError(f"{where}: {', '.join(unknown)} {what}; a recipe sets {', '.join(RECIPE_FIELDS)}")


@dataclass(frozen=True)
class Recipe:
    """How runs learn: TrainConfig fields that depart from the paper's recipe, for all and per model."""

    name: str
    fields: dict = field(default_factory=dict)  # for every model
    per_model: dict = field(default_factory=dict)  # model -> its own fields (a rate, hyper-parameters)
    why: str = ""  # one line: where the values come from

    def __post_init__(self):
        _check_fields(self.fields, f"recipe {self.name}")
        for model, own in self.per_model.items():
            if model not in MODELS:
                raise ConfigError(f"recipe {self.name}: per-model entry {model!r} is not a model; use one of "
                                  f"{', '.join(MODELS)} (BASE+acai takes BASE's entries, then acai's)")
            _check_fields(own, f"recipe {self.name}, {model}")
            make_hparams(model, own.get("hparams", {}))  # a bad hyper-parameter fails here, not in a worker

    @property
    def is_papers(self) -> bool:
        return not (self.fields or self.per_model)

    def values(self, model: str) -> dict:
        """TrainConfig fields of `model`'s runs. BASE+acai takes BASE's entries, then ACAI's on top
        (hparams merged): the rate at which ACAI's adversarial game is stable is the critic's, whatever
        it regularises, so `baseline+acai` trains exactly as `acai` does, and `vqvae+acai` keeps the
        VQ-VAE's codebook decay too."""
        values = dict(self.fields)
        for name in ((COMPOSED[model], "acai") if model in COMPOSED else (model,)):
            own = self.per_model.get(name, {})
            hparams = {**values.get("hparams", {}), **own.get("hparams", {})}
            values.update(own)
            if hparams:
                values["hparams"] = hparams
        return values

    def describe(self, extra: dict | None = None) -> str:
        """The recipe as its fields, e.g. "batch=16, lr=0.001, ...; acai, BASE+acai: lr=0.0005"; `extra`:
        the budget's own schedule fields, shown after the recipe's."""
        if self.is_papers:
            return PAPER_RECIPE_TEXT
        text = ", ".join(f"{k}={v}" for k, v in {**self.fields, **(extra or {})}.items())
        return text + "".join(f"; {m}{', BASE+acai' if m == 'acai' else ''}: {', '.join(f'{k}={v}' for k, v in own.items())}"
                              for m, own in self.per_model.items())


PAPER_RECIPE_TEXT = "the paper's recipe (Adam 1e-4, batch 64, constant rate)"  # SPEC 3
PAPER = Recipe("paper", why="SPEC 3: Adam 1e-4 for every network, batch 64, no schedule")

# The short recipe, from learning curves on a 2-core CPU (docs/results.md, "The short recipe"): with the
# paper's recipe every model draws the mean image for its first ~100k samples.
SHORT = Recipe(
    "short",
    fields=dict(
        batch=16,  # four updates per 64 samples: the models leave the mean image within the first 16k samples
        lr=1e-3,  # ten times the paper's, for the models without an entry below
        lr_warmup=2_048,  # samples over which the rate rises from 0: no blow-up on the first batches
        lr_decay="cosine",  # to 0 at the end of the run (or at lr_decay_over): the last evaluations settle
        # He's variance: at 40,960 samples every seed of five models leaves the mean image (the release's init
        # left one ACAI seed of three there) and ACAI leads both metrics; Smoothness is 2-3x worse than with the
        # release's init where that init's models do leave it (docs/results.md, "The initialisation")
        init="he",
    ),
    per_model={
        "baseline": dict(lr=3e-4),  # at 1e-3 it stayed at the mean image (3 of 3 seeds), at 3e-3 blew up (1 of 3)
        "acai": dict(lr=5e-4),  # the adversarial game collapsed at 1e-3 (no decoded image near a line)
        # A codebook average of ~100 steps follows a 2,048-step run. From He's init the release's codebook left
        # every seed at the mean image at 40,960 samples (3 of 3), at 3e-4 too (1 of 1); seeded from the first
        # batch it left 1 of 2 at 1e-3 and 3 of 3 at 3e-4, the baseline's rate (docs/results.md, "The VQ-VAE's codebook").
        "vqvae": dict(lr=3e-4, hparams=dict(decay=0.99, codebook_from_data=True)),
    },
    why="measured curves of every model at batch 16 (docs/results.md)")

# The short recipe with ACAI (and every BASE+acai) at 2e-4: over 2^19 samples of this schedule (one cosine
# over the run) it ended at a median Mean Distance of 1.33e-3 over its last 4 evaluations against 1.45e-3
# at 5e-4, whose last two evaluations rose (docs/results.md, "The long preset's ACAI rate").
# The release's init at `long`: over its first 262,144 samples ACAI with He's init scored worse at every
# evaluation (Mean Distance 2.07e-3 against 1.74e-3, Smoothness 0.277 against 0.117), and at 2^21 samples
# the mean-image phase is a small part of the run (docs/results.md, "The initialisation").
LONG = dataclasses.replace(SHORT, name="long", fields={**SHORT.fields, "init": "release"},
                           per_model={**SHORT.per_model, "acai": dict(lr=2e-4)},
                           why="the short recipe with the release's init; ACAI's rate chosen from two 2^19-sample runs "
                               "(docs/results.md)")


@dataclass(frozen=True, kw_only=True)
class Budget:
    """How one run of a data set trains and is reported at a preset."""

    samples: int
    eval_every: int
    eval_window: int  # the reported value is the median of the last this-many evaluations
    recipe: Recipe = PAPER
    lr_decay_over: int | None = None  # the cosine's length when it is longer than the run (TrainConfig)
    bfloat16: tuple[str, ...] = ()  # models that train in bfloat16 on a CPU that computes it natively
    progress_pairs: int | None = None  # lighter evaluations before the reported ones (TrainConfig)

    def __post_init__(self):
        for name in ("samples", "eval_every", "eval_window"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Budget.{name} must be positive, got {getattr(self, name)}")
        unknown = [m for m in self.bfloat16 if m not in BFLOAT16_CHECKED]
        if unknown:
            raise ConfigError(f"Budget.bfloat16 names {', '.join(unknown)}, whose bfloat16 training is not checked "
                              f"(BFLOAT16_CHECKED: {', '.join(BFLOAT16_CHECKED)})")

    def config(self, model: str, recipe: Recipe | None = None, bfloat16_here: bool = False) -> dict:
        """TrainConfig fields of `model`'s runs; `recipe`: another recipe than the budget's (the paper's
        with --recipe paper); `bfloat16_here`: the device computes bfloat16 natively, so the budget's
        `bfloat16` models train in it (never with the paper's recipe)."""
        recipe = recipe or self.recipe
        values = dict(samples=self.samples, eval_every=self.eval_every, eval_window=self.eval_window,
                      progress_pairs=self.progress_pairs)
        if not recipe.is_papers:
            values.update(recipe.values(model))
            if self.lr_decay_over is not None:
                values["lr_decay_over"] = self.lr_decay_over
            values["precision"] = "bfloat16" if bfloat16_here and model in self.bfloat16 else "float32"
        return values

    def describe(self, recipe: Recipe | None, precision: str, bfloat16_here: bool = False) -> str:
        recipe = recipe or self.recipe
        text = recipe.describe({} if self.lr_decay_over is None else {"lr_decay_over": self.lr_decay_over})
        if self.bfloat16 and precision == "preset" and not recipe.is_papers:
            text += (f"; bfloat16 for {', '.join(self.bfloat16)}, float32 for the others" if bfloat16_here else
                     f"; float32 (the preset's bfloat16 for {', '.join(self.bfloat16)} needs a CPU that computes it "
                     f"natively, AVX-512 BF16 or AMX)")
        return text


@dataclass(frozen=True, kw_only=True)
class Preset:
    name: str
    lines: Budget
    images: Budget  # MNIST, SVHN, CIFAR-10, CelebA
    probe_samples: int  # the probe on final codes and the pixel baseline
    all_latents: bool  # both latent sizes of the paper, or the first only
    seeds: int  # the default number of seeds per model
    departures: tuple[str, ...] = ()  # how its budgets depart from the paper's (the recipe is described apart)

    def __post_init__(self):
        for name in ("probe_samples", "seeds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Preset {self.name}: {name} must be positive, got {getattr(self, name)}")

    def budget(self, data: str) -> Budget:
        return self.lines if describe_data(data).kind is Kind.LINES else self.images


PRESETS = {p.name: p for p in (
    # The paper's protocol, exactly: Adam 1e-4, batch 64, 2^24 samples, the median of the last 20 evaluations.
    Preset(name="paper",
           lines=Budget(samples=1 << 24, eval_every=1 << 16, eval_window=20),
           images=Budget(samples=1 << 24, eval_every=1 << 16, eval_window=20),
           probe_samples=1 << 24, all_latents=True, seeds=5),
    # The paper's recipe for longer on a 2-core CPU (48 min a seed): ACAI leads Table 1 here too.
    Preset(name="cpu",
           lines=Budget(samples=196_608, eval_every=16_384, eval_window=3),
           images=Budget(samples=524_288, eval_every=32_768, eval_window=5),
           probe_samples=1 << 22, all_latents=True, seeds=1,
           departures=("196,608 samples per run instead of 2^24; median of the last 3 evaluations",)),
    # `make quick`: Table 1 with three seeds in under 30 minutes on 2 CPU cores.
    Preset(name="quick",
           lines=Budget(
               samples=40_960,  # ACAI led both metrics here on every seed; the table takes a sixth less than at 49,152
               eval_every=8_192, eval_window=1,  # 5 evaluations; the table reports the last
               recipe=SHORT,
               lr_decay_over=49_152,  # the first 40,960 samples of a 49,152-sample cosine (a compressed one did worse)
               # float32 for every model: on an AMX CPU, bfloat16 left one ACAI seed of three at the mean image
               # at 40,960 samples, where that seed left it in float32 (docs/results.md, "bfloat16 on AMX")
               progress_pairs=64),  # the four curve-only evaluations score 64 pairs and skip the probe
           images=Budget(samples=98_304, eval_every=16_384, eval_window=3),
           probe_samples=1 << 22, all_latents=False, seeds=3,
           departures=("40,960 samples per lines run (the last evaluation reported; the four before it, points "
                       "of the curves only, score 64 pairs and skip the probe), 98,304 per image run (median of "
                       "the last 3), instead of 2^24 (median of the last 20)",)),
    # Lines runs as long as a 2-core CPU allows in hours: 2^21 samples, an eighth of the paper's 2^24.
    Preset(name="long",
           lines=Budget(
               samples=1 << 21,
               eval_every=1 << 16,  # the release's interval: 32 whole evaluations draw the curve
               eval_window=4,  # the last 2^18 samples, where the cosine is below 15 % of its peak
               recipe=LONG,  # warm-up, then one cosine over the whole run
               bfloat16=BFLOAT16_CHECKED),
           images=Budget(samples=1 << 21, eval_every=1 << 16, eval_window=4),
           probe_samples=1 << 22, all_latents=True, seeds=1,
           departures=("2^21 samples per run instead of 2^24; median of the last 4 evaluations instead of 20",)),
)}

RECIPES = {recipe.name: recipe for recipe in (PAPER, SHORT, LONG)}  # `acai train --recipe`
