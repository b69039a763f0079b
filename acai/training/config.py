"""Typed run configuration with the paper's defaults (SPEC 3); unknown keys are errors."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from acai.core.data import FOLDER_PREFIX, describe_data
from acai.core.models import MODELS, ConfigError, base_model, make_hparams
from acai.core.nets import INITS, Arch

# Appendix B settings per data set at the paper's first latent size (SPEC 3).
DATA_ARCH = {
    "lines": Arch(scales=4, depth=16, latent=16, colors=1),  # d_z 64
    "mnist": Arch(scales=3, depth=16, latent=2, colors=1),  # d_z 32 (latent 16: 256)
    "svhn": Arch(scales=3, depth=64, latent=2, colors=3),  # d_z 32 / 256
    "celeba": Arch(scales=3, depth=64, latent=2, colors=3),
    "cifar10": Arch(scales=3, depth=64, latent=16, colors=3),  # d_z 256 / 1024
}
FOLDER_ARCH = Arch(scales=3, depth=64, latent=2, colors=3)
MAX_SCALES = 5  # 32 >> 5 = 1: a 1x1 latent grid
# The largest seed that every generator a run seeds from it accepts: torch's manual_seed takes at most
# 2^64 - 1, numpy's SeedSequence no negative number, and a stack of K seeds uses seed .. seed + K - 1.
MAX_SEED = 2**63 - 1
# The release trained its VQ-VAE on lines with a 4x4 latent (scales 3, d_z 256). Keyed by the base
# model: BASE+acai trains on BASE's architecture, so each pair differs by the regulariser only.
MODEL_ARCH_OVERRIDES = {("lines", "vqvae"): {"scales": 3}}


# Fields that change how a run is carried out or reported, not what it learns.
REPORTING_FIELDS = ("eval_window", "progress_pairs", "device", "checkpoint_seconds")
# "bfloat16" runs the training forward passes under autocast; weights, Adam, the probe and evaluation stay float32.
PRECISIONS = ("float32", "bfloat16")
LR_DECAYS = ("none", "cosine")
# Models whose lines metrics stayed within float32's seed spread in bfloat16 (benchmarks/precision_check.py;
# docs/speed.md, "bfloat16"); the others train in bfloat16 only when asked, with a warning.
BFLOAT16_CHECKED = ("vae", "acai", "baseline+acai")


@dataclass
class TrainConfig:
    model: str = "acai"
    data: str = "lines"
    samples: int = 1 << 24  # training budget in samples (paper: 2^24)
    batch: int = 64
    lr: float = 1e-4  # Adam's rate for every group (SPEC 3); a model may set its own per group
    lr_warmup: int = 0  # samples over which every rate rises linearly from 0 (paper: none)
    lr_decay: str = "none"  # one of LR_DECAYS: "none" (paper) or "cosine" (to 0 at `lr_decay_over`)
    # Samples over which the cosine falls to 0; None: the run's `samples`. Larger than `samples`, the run
    # stops part of the way down: it is the first `samples` of the longer run, update for update.
    lr_decay_over: int | None = None
    group_lr: dict = field(default_factory=dict)  # group name -> its own Adam rate, e.g. {"critic": 1e-4} (paper: none)
    init: str = "release"  # one of INITS: the convolutions' initial scale (acai/core/nets.py; paper: the release's)
    seed: int = 0
    eval_every: int = 1 << 16  # samples between evaluations (release: 64 Ki)
    eval_window: int = 20  # reported value = median of the last this-many evaluations
    eval_pairs: int = 256  # lines interpolations per evaluation (release: 256 pairs of fresh lines)
    # The evaluations before the reported window (the last eval_window) only draw the learning curves.
    # With progress_pairs they score that many interpolation pairs and skip the tandem probe; the
    # reported ones stay whole. None: every evaluation is whole (the paper's presets). For the quick
    # preset's lines runs, whose six evaluations took a sixth of the table's time (docs/results.md).
    progress_pairs: int | None = None
    checkpoint_seconds: float = 300.0  # also checkpoint at every evaluation
    device: str = "cpu"
    precision: str = "float32"  # one of PRECISIONS; opt-in until bfloat16 is validated against the paper's numbers
    data_dir: str | None = None
    dz: int | None = None  # latent size d_z; sets the latent channels
    scales: int | None = None
    depth: int | None = None
    latent: int | None = None
    hparams: dict = field(default_factory=dict)  # model hyper-parameters, see models.hparams_class(model)

    def __post_init__(self):
        # Hyper-parameters parsed by their declared types and checked against their ranges; only the
        # keys given are kept, so a saved config and a new one with the same values compare equal.
        hp = make_hparams(self.model, self.hparams)
        self.hparams = {name: getattr(hp, name) for name in self.hparams}
        for name in ("samples", "batch", "eval_every", "eval_window", "eval_pairs", "progress_pairs"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed must be a whole number from 0 to 2^63 - 1, got {self.seed!r}; e.g. --seed 0")
        # A run trains whole batches, so a budget between two multiples of the batch would train (and
        # report) more samples than it names, and a batch above the budget many times more.
        if self.batch > self.samples:
            raise ConfigError(f"batch={self.batch:,} is larger than samples={self.samples:,}: a run trains whole "
                              f"batches; use a batch of at most {self.samples:,}, or more samples")
        if self.samples % self.batch:
            low, high = self.samples // self.batch * self.batch, -(-self.samples // self.batch) * self.batch
            raise ConfigError(f"samples={self.samples:,} is not a whole number of batches of {self.batch}: a run "
                              f"trains whole batches; use --samples {low:,} or {high:,}")
        # `not x > 0` also catches NaN, which passes every comparison's negation.
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr}; e.g. --lr 1e-4 (the paper's)")
        if self.lr_warmup < 0:
            raise ConfigError(f"lr_warmup must be 0 or more samples, got {self.lr_warmup}")
        if self.lr_decay not in LR_DECAYS:
            raise ConfigError(f"unknown lr_decay {self.lr_decay!r}; use {' or '.join(LR_DECAYS)}")
        if self.lr_decay_over is not None:
            if self.lr_decay != "cosine":
                raise ConfigError(f"lr_decay_over={self.lr_decay_over} sets where the cosine ends; it needs "
                                  f"lr_decay=cosine, got {self.lr_decay!r}")
            if self.lr_decay_over < self.samples:
                raise ConfigError(f"lr_decay_over={self.lr_decay_over} is below samples={self.samples}: the "
                                  f"cosine would rise again after 0; give at least {self.samples} or leave it out")
        if any(not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0)
               for rate in self.group_lr.values()):
            raise ConfigError(f"group_lr rates must be positive numbers, got {self.group_lr}")
        if not self.checkpoint_seconds > 0:
            raise ConfigError(f"checkpoint_seconds must be > 0, got {self.checkpoint_seconds}")
        if self.scales is not None and not 1 <= self.scales <= MAX_SCALES:
            raise ConfigError(f"scales={self.scales} does not fit 32x32 images: each scale halves the side, "
                              f"so use 1 to {MAX_SCALES} (5 leaves a 1x1 latent grid)")
        for name in ("depth", "latent", "dz"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be 1 or more, got {getattr(self, name)}")
        # Paths are stored resolved, so the run can be read (interpolate, probe, --resume) from any
        # working folder, and the same folder spelled differently is the same run.
        if self.data_dir is not None:
            self.data_dir = str(Path(self.data_dir).expanduser().resolve())
        if self.data.startswith(FOLDER_PREFIX):
            self.data = FOLDER_PREFIX + str(Path(self.data[len(FOLDER_PREFIX):]).expanduser().resolve())
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; use {' or '.join(INITS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; use {' or '.join(PRECISIONS)}")
        # The architecture must fit (a d_z that fills the latent grid) when the run is planned, not when
        # it is built: a sweep checks every run this way before the first one trains.
        self.arch(colors=1)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown configuration key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def trained_fields(self) -> dict:
        """What identifies the training itself (a finished run is reused only if these match). A data set
        drawn in memory reads no files, so its run's data_dir (stored by older sweeps) identifies nothing."""
        ignored = REPORTING_FIELDS + (() if describe_data(self.data).reads_files else ("data_dir",))
        return {k: v for k, v in self.to_dict().items() if k not in ignored}

    @property
    def steps(self) -> int:
        return -(-self.samples // self.batch)

    @property
    def decay_steps(self) -> int:
        """Steps over which a cosine rate falls to 0: the run's own, or those of `lr_decay_over` samples."""
        return self.steps if self.lr_decay_over is None else -(-self.lr_decay_over // self.batch)

    @property
    def eval_every_steps(self) -> int:
        return max(1, self.eval_every // self.batch)

    @property
    def evaluations(self) -> int:
        """How many evaluations the whole run makes: every eval_every samples and at the last step."""
        return self.steps // self.eval_every_steps + (self.steps % self.eval_every_steps != 0)

    def whole_evaluation(self, index: int) -> bool:
        """Whether evaluation `index` (0-based) measures everything on eval_pairs: all of them unless
        progress_pairs is set, else only the last eval_window, whose median is reported."""
        return self.progress_pairs is None or index >= self.evaluations - self.eval_window

    def evaluation_pairs(self, index: int) -> int:
        """Lines interpolations that evaluation `index` scores."""
        return self.eval_pairs if self.whole_evaluation(index) else self.progress_pairs

    def arch(self, colors: int) -> Arch:
        base = DATA_ARCH.get(self.data, FOLDER_ARCH)
        overrides = MODEL_ARCH_OVERRIDES.get((self.data, base_model(self.model)), {})
        arch = dataclasses.replace(base, colors=colors, **overrides)
        arch = dataclasses.replace(arch, **{k: getattr(self, k) for k in ("scales", "depth", "latent")
                                           if getattr(self, k) is not None})
        if self.dz is not None:
            side = arch.size >> arch.scales
            if self.dz % (side * side):
                raise ConfigError(f"dz={self.dz} is not a multiple of the {side}x{side} latent grid "
                                  f"(scales={arch.scales}); use a multiple of {side * side}")
            arch = dataclasses.replace(arch, latent=self.dz // (side * side))
        return arch


__all__ = ["DATA_ARCH", "MODELS", "ConfigError", "TrainConfig"]
