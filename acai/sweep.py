"""`acai reproduce`: a table of the paper as a sweep of idempotent units, run by an executor.

    SweepSpec (built once by the CLI) --plan--> [Unit, ...] --Executor--> run folders --collect--> tables, figures

* A `Preset` fixes each run's budget and recipe: `paper` is the paper's
  protocol exactly; the short presets say what they change (`departures`).
* Every run has a stable id `DATA-dzD/MODEL/seedS` and lives in OUT/runs/ID.
* A `Unit` trains or resumes its runs (K stacked seeds of one model, or one
  run) and then makes the measurements its table needs afterwards (the probe
  on the final codes, clustering), each cached in the run folder against the
  checkpoint it read. Running a unit twice does nothing the second time, so a
  killed sweep, a preempted SLURM task or a second `reproduce` just continues.
* Executors (acai/executors.py) run the units: inline, in N local worker
  processes, or as a SLURM job array.
* Results are read back from the run folders only, so a sweep can be
  collected (or looked at with `acai status OUT`) by any later process.
"""
from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import checkpoint as ckpt
from .config import BFLOAT16_CHECKED, ConfigError, TrainConfig
from .models import MODELS, COMPOSED, base_model, check_name
from .progress import Progress
from .tables import LATENTS, TABLES, Cell, Table

SWEEP = "sweep.json"  # what OUT holds: the spec and every unit, for `acai status` and re-attaching
PAPER_RECIPE = "the paper's recipe (Adam 1e-4, batch 64, constant rate)"  # SPEC 3


@dataclass(frozen=True)
class Budget:
    """How one run trains and is reported at a preset."""

    samples: int
    eval_every: int
    eval_window: int  # reported value = median of the last this-many evaluations
    recipe: dict = field(default_factory=dict)  # TrainConfig fields that depart from the paper's recipe
    per_model: dict = field(default_factory=dict)  # model -> its own departures (TrainConfig fields, hparams)
    bfloat16: tuple[str, ...] = ()  # models that train in bfloat16 here (validated, see README)
    progress_pairs: int | None = None  # lighter evaluations before the reported ones (TrainConfig)

    def config(self, model: str, paper_recipe: bool = False, bfloat16_here: bool = False) -> dict:
        """TrainConfig fields of `model`'s runs; `paper_recipe`: this budget with the paper's recipe;
        `bfloat16_here`: the device computes bfloat16 natively (`SweepSpec.bfloat16_here`), so the
        budget's `bfloat16` models train in it."""
        values = dict(samples=self.samples, eval_every=self.eval_every, eval_window=self.eval_window,
                      progress_pairs=self.progress_pairs)
        if not paper_recipe:
            values.update(self.recipe)
            values["precision"] = "bfloat16" if bfloat16_here and model in self.bfloat16 else "float32"
            values.update(self.own_departures(model))
        return values

    def own_departures(self, model: str) -> dict:
        """`model`'s own entries of `per_model`. BASE+acai takes BASE's, then ACAI's on top (hparams
        merged): the rate at which ACAI's adversarial game is stable is the critic's, whatever it
        regularises, so `baseline+acai` trains exactly as `acai` does, and `vqvae+acai` keeps the
        VQ-VAE's codebook decay too."""
        values: dict = {}
        for name in ((COMPOSED[model], "acai") if model in COMPOSED else (model,)):
            own = self.per_model.get(name, {})
            hparams = {**values.get("hparams", {}), **own.get("hparams", {})}
            values.update(own)
            if hparams:
                values["hparams"] = hparams
        return values

    def trains_the_papers_recipe(self, paper_recipe: bool) -> bool:
        """Asked for (`--recipe paper`), or a budget without departures from the recipe (`paper`, `cpu`)."""
        return paper_recipe or not (self.recipe or self.per_model)

    def describe(self, paper_recipe: bool, precision: str, bfloat16_here: bool = False) -> str:
        if self.trains_the_papers_recipe(paper_recipe):
            text = PAPER_RECIPE
        else:
            text = ", ".join(f"{k}={v}" for k, v in self.recipe.items())
            text += "".join(f"; {m}{', BASE+acai' if m == 'acai' else ''}: {', '.join(f'{k}={v}' for k, v in own.items())}"
                            for m, own in self.per_model.items())
        if self.bfloat16 and precision == "preset" and not paper_recipe:
            text += (f"; bfloat16 for {', '.join(self.bfloat16)}, float32 for the others" if bfloat16_here else
                     f"; float32 (the preset's bfloat16 for {', '.join(self.bfloat16)} needs a CPU that computes it "
                     f"natively, AVX-512 BF16 or AMX)")
        return text


@dataclass(frozen=True)
class Preset:
    name: str
    lines: Budget
    images: Budget  # MNIST, SVHN, CIFAR-10, CelebA
    probe_samples: int  # the probe on final codes and the pixel baseline
    all_latents: bool  # both latent sizes of the paper, or the first only
    seeds: int  # default number of seeds per model
    departures: tuple[str, ...] = ()  # how its budgets depart from the paper's (the recipe is listed apart)

    def budget(self, data: str) -> Budget:
        return self.lines if data == "lines" else self.images


PAPER_RESTARTS, PAPER_ITERATIONS = 1000, 1000  # K-Means in the release's cluster.py (SPEC 5)

# The short recipe (`quick` on lines), chosen from learning curves measured on this project's 2-core CPU
# (README, `make quick`: "What the short recipe departs from"; benchmarks/recipe_curves.py): with the
# paper's Adam 1e-4 at batch 64 every model draws the mean image for its first ~100k samples. Batch 16
# gives four updates per 64 samples; a rate ten times the paper's rises over the first 2,048 samples and
# decays to 0 along a cosine. Per model: ACAI's adversarial game is stable at 5e-4 and collapsed at 1e-3;
# the baseline stayed at the mean image at 1e-3 (3 of 3 seeds), blew up at 3e-3 (1 of 3) and left it at
# 3e-4 (3 of 3); the VQ-VAE's codebook average (time constant 1/(1 - decay) steps) needs 100 steps rather
# than 1,000 to follow its encoder in a 2,048-step run. BASE+acai takes BASE's entries and then ACAI's
# (`Budget.own_departures`).
SHORT_RECIPE = dict(batch=16, lr=1e-3, lr_warmup=2_048, lr_decay="cosine", lr_decay_over=49_152)
SHORT_PER_MODEL = {"baseline": dict(lr=3e-4), "acai": dict(lr=5e-4), "vqvae": dict(hparams=dict(decay=0.99))}

PRESETS = {
    # The paper's protocol, exactly: Adam 1e-4, batch 64, 2^24 samples, median of the last 20 evaluations.
    "paper": Preset("paper", Budget(1 << 24, 1 << 16, 20), Budget(1 << 24, 1 << 16, 20), 1 << 24, True, 5),
    # The paper's recipe for longer on a 2-core CPU (48 min a seed): ACAI leads Table 1 here too.
    "cpu": Preset("cpu", Budget(196_608, 16_384, 3), Budget(524_288, 32_768, 5), 1 << 22, True, 1,
                  ("196,608 samples per run instead of 2^24; median of the last 3 evaluations",)),
    # The README's first command: Table 1 with three seeds on 2 CPU cores. Each lines run is the first
    # 40,960 samples of the short recipe's 49,152-sample schedule (the rate is at 7 % of its peak there):
    # in the 49,152-sample runs' curves (3 seeds) ACAI already led both metrics at 40,960, and the table
    # takes a sixth less time. A cosine compressed to 32,768 samples instead left every model worse, and
    # ACAI behind the VAE on Mean Distance (README, "Time"). bfloat16 for the models it
    # was checked for (BFLOAT16_CHECKED: ACAI 1.5x, the VAE 1.5x faster), on a CPU that computes it
    # natively; float32 on one without AVX-512 BF16, where it is emulated and 7x slower (README, "Speed").
    "quick": Preset("quick",
                    Budget(40_960, 8_192, 1, SHORT_RECIPE, SHORT_PER_MODEL, BFLOAT16_CHECKED,
                           progress_pairs=64),  # 5 evaluations a run; the table reports the last
                    Budget(98_304, 16_384, 3), 1 << 22, False, 3,
                    ("40,960 samples per lines run (the last evaluation reported; the four before it, points "
                     "of the curves only, score 64 pairs and skip the probe), 98,304 per image run (median of "
                     "the last 3), instead of 2^24 (median of the last 20)",)),
}


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its id, and the configuration that trains it."""

    data: str
    dz: int
    model: str
    seed: int
    config: TrainConfig

    @property
    def id(self) -> str:
        return f"{self.data}-dz{self.dz}/{self.model}/seed{self.seed}"

    def folder(self, out) -> Path:
        return Path(out) / "runs" / self.id


@dataclass
class SweepSpec:
    """Everything `reproduce` needs, built once (by the CLI or a caller) and checked on creation."""

    what: str  # a key of TABLES
    out: Path
    preset: Preset
    seeds: int
    models: tuple[str, ...] = tuple(MODELS)
    datasets: tuple[str, ...] = ()  # default: the table's
    latents: tuple[int, ...] = ()  # default: the preset's choice of the paper's
    device: str = "cpu"
    precision: str = "preset"  # "preset": each model as the preset says; or float32 / bfloat16 for all
    recipe: str = "preset"  # "preset": the preset's recipe; "paper": its budget with the paper's recipe
    data_dir: str | None = None
    stack: bool = False  # train the seeds of a model together with stacked weights (pays on a GPU)
    overrides: dict = field(default_factory=dict)  # TrainConfig fields for every run (tests: tiny networks)
    probe_samples: int | None = None
    restarts: int = PAPER_RESTARTS  # K-Means restarts (table 3)
    iterations: int = PAPER_ITERATIONS  # at most, per restart
    pairs: int = 3  # interpolations per model in the figures of image data sets

    def __post_init__(self):
        self.out = Path(self.out)
        if self.data_dir is not None:  # as TrainConfig stores it: the sweep can be resumed from anywhere
            self.data_dir = str(Path(self.data_dir).expanduser().resolve())
        if self.what not in TABLES:
            raise ConfigError(f"unknown table {self.what!r}; choose one of {', '.join(TABLES)}")
        table = TABLES[self.what]
        self.datasets = tuple(self.datasets or table.datasets)
        unknown = [d for d in self.datasets if d not in table.datasets]
        if unknown:
            what = " (the lines benchmark)" if table.datasets == ("lines",) else ""
            raise ConfigError(f"{self.what} covers {', '.join(table.datasets)}{what}; got {', '.join(unknown)}")
        for model in self.models:
            check_name(model)
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {self.seeds}")
        if self.precision not in ("preset", "float32", "bfloat16"):
            raise ConfigError(f"unknown precision {self.precision!r}; use preset, float32 or bfloat16")
        if self.recipe not in ("preset", "paper"):
            raise ConfigError(f"unknown recipe {self.recipe!r}; use preset or paper")

    @property
    def table(self) -> Table:
        return TABLES[self.what]

    def latent_sizes(self, data: str) -> tuple[int, ...]:
        if data == "lines":
            return LATENTS["lines"]
        if self.latents:
            return self.latents
        return LATENTS[data] if self.preset.all_latents else LATENTS[data][:1]

    @property
    def bfloat16_here(self) -> bool:
        """Do the preset's bfloat16 models train in bfloat16 in this sweep? Only with `precision="preset"`,
        and only on a CPU that computes it natively (AVX-512 BF16, AMX): emulated on AVX2 it is 7-9x slower than float32
        (README, "Speed"), and on a GPU a sweep stacks its seeds, which train in float32 only."""
        from .run import native_bfloat16, resolve_device

        device = resolve_device(self.device)
        return self.precision == "preset" and device.type == "cpu" and native_bfloat16(device)

    def run(self, data: str, dz: int, model: str, seed: int) -> RunSpec:
        values = self.preset.budget(data).config(model, paper_recipe=self.recipe == "paper",
                                                 bfloat16_here=self.bfloat16_here)
        if self.precision != "preset":
            values["precision"] = self.precision
        values.update(self.overrides)
        config = TrainConfig(model=model, data=data, dz=None if data == "lines" else dz, seed=seed,
                             device=self.device, data_dir=self.data_dir, **values)
        return RunSpec(data, dz, model, seed, config)

    def runs(self) -> list[RunSpec]:
        seeds = min(self.seeds, self.table.seeds_drawn or self.seeds)  # figures: seed 0's runs only
        return [self.run(data, dz, model, seed) for data in self.datasets for dz in self.latent_sizes(data)
                for model in self.models for seed in range(seeds)]

    def probe_options(self) -> dict:
        """The probe on final codes: the tandem probe's protocol, 16 evaluations, median of the last 3."""
        samples = self.probe_samples or self.preset.probe_samples
        return dict(samples=samples, window=3, eval_every=max(1 << 16, samples // 16))

    def pixel_options(self) -> dict:
        """The pixel baseline: the release's classify_fc.py protocol (label smoothing 0.1, the rate
        decayed by 0.1 per half of the run, test accuracy every 2^16 samples, median of the last 20)
        at the preset's probe budget (2^24 samples, as the release, at the paper preset)."""
        from .represent import PROTOCOLS

        samples = self.probe_samples or self.preset.probe_samples
        return dict(samples=samples, eval_every=1 << 16, window=20, **PROTOCOLS["classify_fc"])

    def to_dict(self) -> dict:
        return dict(what=self.what, out=str(self.out), preset=self.preset.name, seeds=self.seeds,
                    models=list(self.models), datasets=list(self.datasets), latents=list(self.latents),
                    device=self.device, precision=self.precision, recipe=self.recipe, data_dir=self.data_dir,
                    stack=self.stack,
                    overrides=self.overrides, probe_samples=self.probe_samples, restarts=self.restarts,
                    iterations=self.iterations, pairs=self.pairs)

    @classmethod
    def from_dict(cls, values: dict) -> "SweepSpec":
        values = dict(values)
        if values["preset"] not in PRESETS:
            raise ConfigError(f"unknown preset {values['preset']!r}; choose one of {', '.join(PRESETS)}")
        values["preset"] = PRESETS[values["preset"]]
        for key in ("models", "datasets", "latents"):
            values[key] = tuple(values[key])
        return cls(**values)


def finished(run: RunSpec, out) -> dict | None:
    """The metrics of a finished run (re-summarised with this run's window), else None.
    A folder that holds a finished run of other settings is an error, never silently reused."""
    from .run import LOG, METRICS, summarise

    folder = run.folder(out)
    if not (folder / METRICS).exists():
        return None
    metrics = ckpt.read_json(folder / METRICS)
    if TrainConfig.from_dict(metrics["config"]).trained_fields() != run.config.trained_fields():
        raise ConfigError(f"{folder} holds a finished run with other settings; use another --out or delete it")
    history = ckpt.read_json_lines(folder / LOG)
    return {**metrics, **summarise(history, run.config.eval_window)}


@dataclass
class Unit:
    """What one executor task does, idempotently: train (or resume) `members`, stacked when there are
    several, then make the measurements `after` on each (probe on final codes, clustering)."""

    out: str
    members: tuple[RunSpec, ...]
    after: tuple[str, ...] = ()
    probe: dict = field(default_factory=dict)
    clustering: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        first = self.members[0]
        seeds = ",".join(str(m.seed) for m in self.members)
        return f"{first.data}-dz{first.dz}/{first.model}/seed{'s' if len(self.members) > 1 else ''}{seeds}"

    @property
    def samples(self) -> int:
        return sum(m.config.steps * m.config.batch for m in self.members)

    def cost(self) -> float:
        """Relative work, to start the longest units first: ACAI's critic triples a step's work
        (so BASE+acai costs BASE's work plus about two baselines)."""
        model = self.members[0].model
        per_sample = {"acai": 3.0, "vqvae": 1.6, "denoising": 1.15}.get(base_model(model), 1.0)
        per_sample += 2.0 if model in COMPOSED else 0.0
        return self.samples * per_sample * (1.0 if self.members[0].config.precision == "float32" else 0.6)

    def __call__(self, progress=None) -> None:
        from .train import train_runs

        todo = [m for m in self.members if finished(m, self.out) is None]
        if todo:
            outs = [m.folder(self.out) for m in todo]
            train_runs([m.config for m in todo], outs, resume=True, progress=progress if progress else False,
                       stack=len(todo) > 1)
        for member in self.members:
            measure_after(member.folder(self.out), self.after, self.probe, self.clustering,
                          progress or None, f"{member.model}/{member.data}/seed{member.seed}")

    def trained_samples(self) -> int:
        """The samples of the members that finished before this sweep (they report no progress)."""
        return sum(m.config.steps * m.config.batch for m in self.members if finished(m, self.out) is not None)


def measure_after(folder: Path, after, probe: dict, clustering: dict, progress: Progress | None = None,
                  label: str = "") -> dict:
    """The measurements made on a finished run's folder (cached there against its checkpoint); each
    shows how far it is on `progress` (a probe: minutes; 1,000 K-Means restarts: up to an hour)."""
    from .represent import cluster_run, run_probe

    results = {}
    if "final_probe" in after:
        with measuring(progress, label, "probe", "steps") as tick:
            results["final_probe"] = run_probe(folder, tick=tick, **probe)["accuracy"]
    if "clustering" in after:
        with measuring(progress, label, "K-Means", "restarts") as tick:
            results["cluster_accuracy"] = cluster_run(folder, tick=tick, **clustering)["accuracy"]
    return results


@contextmanager
def measuring(progress: Progress | None, label: str, what: str, unit: str):
    """The measurement `what` of run `label` as a piece of work with no samples on `progress`:
    -> tick(done, total) that shows "WHAT done/total UNIT" beside the label, or None."""
    if progress is None:
        yield None
        return
    progress.start(f"{label} {what}", 0, 0)
    try:
        yield lambda done, total: progress.advance(0, {"measuring": f"{what} {done:,}/{total:,} {unit}"})
    finally:
        progress.close()


@dataclass
class PixelUnit:
    """Table 2's pixel baseline for one data set: a dense layer on raw pixels, cached in OUT."""

    out: str
    data: str
    data_dir: str | None
    probe: dict

    @property
    def id(self) -> str:
        return f"pixels-{self.data}"

    samples = 0

    def cost(self) -> float:
        return self.probe["samples"] * 0.01

    def trained_samples(self) -> int:
        return 0

    def __call__(self, progress=None) -> None:
        from .represent import pixel_probe

        path = Path(self.out) / f"{self.id}.json"
        if ckpt.cached_json(path, self.probe) is None:
            with measuring(progress or None, self.id, "probe", "steps") as tick:
                result = pixel_probe(self.data, self.data_dir, tick=tick, **self.probe)
            ckpt.save_json({**self.probe, **result}, path)

    def result(self) -> dict:
        return ckpt.cached_json(Path(self.out) / f"{self.id}.json", self.probe)


def curves_title(spec: SweepSpec) -> str:
    """The learning curves' title names the recipe too: `--recipe paper` curves look nothing like the
    short recipe's at the same preset."""
    faithful = spec.preset.lines.trains_the_papers_recipe(spec.recipe == "paper")
    recipe = PAPER_RECIPE if faithful else "its short recipe"
    return f"Table 1 runs, preset {spec.preset.name} with {recipe}, {spec.seeds} seed{'s' if spec.seeds > 1 else ''}"


def plan(spec: SweepSpec) -> list:
    """Every unit of the sweep, the longest first (so N workers finish together), checked before
    anything trains: stackable members, data sets that load, no folder holding other settings."""
    after = tuple(m.after for m in spec.table.measures if m.after)
    groups: dict[tuple, list[RunSpec]] = {}
    for run in spec.runs():
        groups.setdefault((run.data, run.dz, run.model), []).append(run)
    units: list = []
    for members in groups.values():
        chunks = [members] if spec.stack else [[m] for m in members]
        units += [Unit(str(spec.out), tuple(chunk), after, spec.probe_options(),
                       dict(restarts=spec.restarts, iterations=spec.iterations)) for chunk in chunks]
    if spec.table.pixel_baseline:
        units += [PixelUnit(str(spec.out), data, spec.data_dir, spec.pixel_options()) for data in spec.datasets]
    check(spec, units)
    return sorted(units, key=lambda unit: -unit.cost())


def check(spec: SweepSpec, units: list) -> None:
    from .data import get_source
    from .stacked import check_stackable

    for data in spec.datasets:
        get_source(data, spec.data_dir)  # a missing or damaged data set: one line now, not in a worker
    for unit in units:
        if isinstance(unit, Unit):
            if len(unit.members) > 1:
                check_stackable([m.config for m in unit.members], [m.folder(spec.out) for m in unit.members])
            for member in unit.members:
                finished(member, spec.out)


def collect(spec: SweepSpec) -> tuple[dict, dict]:
    """Read every run of the sweep from its folder -> ({(data, dz): {model: {key: Cell}}}, rates)."""
    from .run import FAILED

    cells: dict = {}
    rates: dict = {}
    for run in spec.runs():
        folder = run.folder(spec.out)
        metrics = finished(run, spec.out)
        failed = ckpt.read_json(folder / FAILED) if (folder / FAILED).exists() else None
        if metrics is None and failed is None:
            raise ConfigError(f"{folder} has not finished; run the sweep to the end first (acai status "
                              f"{spec.out} shows what is missing)")
        state = "diverged" if failed else metrics.get("state", "ok")
        extra = {} if failed else measure_after(folder, tuple(m.after for m in spec.table.measures if m.after),
                                                spec.probe_options(), dict(restarts=spec.restarts,
                                                                           iterations=spec.iterations))
        values = {**(metrics or {}), **extra}
        for measure in spec.table.measures:
            cell = cells.setdefault((run.data, run.dz), {}).setdefault(run.model, {}).setdefault(
                measure.key, Cell([], []))
            cell.values.append(float(values.get(measure.key, math.nan)))
            cell.states.append(state)
        if metrics:
            rates.setdefault((run.data, run.dz, run.model), []).append(metrics["samples_per_second"])
    return cells, {key: sum(v) / len(v) for key, v in rates.items()}


def write_sweep(spec: SweepSpec, units: list) -> None:
    """OUT/sweep.json: this sweep's spec and units, and the spec of every table written into OUT (the report
    shows each: table2 and table3 share their runs)."""
    path = spec.out / SWEEP
    tables = {**(ckpt.read_json(path).get("tables", {}) if path.exists() else {}), spec.what: spec.to_dict()}
    ckpt.save_json(dict(spec=spec.to_dict(), units=[unit.id for unit in units], written=time.time(), tables=tables),
                   path)


def read_sweep(out) -> SweepSpec:
    path = Path(out) / SWEEP
    if not path.exists():
        raise ConfigError(f"{out} holds no sweep ({SWEEP} is missing); start one with acai reproduce ... --out {out}")
    return SweepSpec.from_dict(ckpt.read_json(path)["spec"])


def describe(spec: SweepSpec) -> str:
    """The line printed above a table: budget, recipe and every departure from the paper."""
    parts = []
    for data in dict.fromkeys("lines" if d == "lines" else "images" for d in spec.datasets):
        budget = spec.preset.budget("lines" if data == "lines" else "mnist")
        recipe = budget.describe(spec.recipe == "paper", spec.precision,
                                 bfloat16_here=spec.bfloat16_here)
        parts.append(f"{data}: {budget.samples:,} samples per run, median of the last {budget.eval_window} "
                     f"evaluation{'s' if budget.eval_window > 1 else ''}, {recipe}")
    text = f"Preset `{spec.preset.name}`: " + "; ".join(parts) + "."
    if spec.overrides:
        text += f" Overridden for every run: {json.dumps(spec.overrides, sort_keys=True)}."
    if spec.precision != "preset":
        text += f" Precision {spec.precision} for every model."
    if spec.preset.departures:  # of the budget; the recipe is said above
        text += " Departs from the paper: " + "; ".join(spec.preset.departures) + "."
    # What the command line changed in the evaluations after training: a table made with fewer K-Means
    # restarts, or another probe budget, must not read like the preset's.
    if spec.what == "table3" and (spec.restarts, spec.iterations) != (PAPER_RESTARTS, PAPER_ITERATIONS):
        text += (f" K-Means: {spec.restarts:,} restarts of at most {spec.iterations:,} iterations instead of the "
                 f"paper's {PAPER_RESTARTS:,} of at most {PAPER_ITERATIONS:,}.")
    if spec.what == "table2" and spec.probe_samples and spec.probe_samples != spec.preset.probe_samples:
        text += (f" Probe on final codes and pixel baseline: {spec.probe_samples:,} samples instead of the "
                 f"preset's {spec.preset.probe_samples:,}.")
    return text


def reproduce(spec: SweepSpec, executor=None, progress: bool = True) -> str:
    """Run every unit of the sweep with `executor` (default: this process), then write the table
    (OUT/TABLE.md, .csv, .json), its figures and OUT/report.html; -> the markdown. One sweep at a time per OUT."""
    from .executors import Inline
    from .progress import SweepDisplay
    from .report import write_report

    start = time.perf_counter()
    units = plan(spec)
    with ckpt.folder_lock(spec.out):
        write_sweep(spec, units)
        display = SweepDisplay(sum(unit.samples for unit in units), f"{spec.what} ({len(units)} units)",
                               enabled=progress, done=sum(unit.trained_samples() for unit in units))
        try:
            failures = (executor or Inline()).run(units, display)
        finally:
            display.close()
        failed = {unit.id: failures.get(unit.id) for unit in units if failures.get(unit.id)}
        diverged = {unit.id for unit in units if isinstance(unit, Unit)
                    and any((m.folder(spec.out) / "failed.json").exists() for m in unit.members)}
        others = [f"{unit_id}: {why}" for unit_id, why in failed.items() if unit_id not in diverged]
        if others:
            raise ConfigError(f"{len(others)} of {len(units)} units failed (acai status {spec.out} lists them); "
                              f"the first: {others[0]}")
        markdown = write_results(spec, time.perf_counter() - start)
        markdown += f"wrote {write_report(spec.out)}\n"
    print(markdown)
    return markdown


def write_results(spec: SweepSpec, seconds: float | None = None) -> str:
    """The table and figures of a finished sweep, read from its run folders."""
    from . import tables

    written = []
    markdown = ""
    if spec.table.measures:
        cells, rates = collect(spec)
        extra = []
        if spec.table.pixel_baseline:
            for data in spec.datasets:
                result = PixelUnit(str(spec.out), data, spec.data_dir, spec.pixel_options()).result()
                if result is not None:
                    extra.append(f"| {data} | pixels | dense layer on pixels (classify_fc.py protocol) | — | — | "
                                 f"{result['accuracy']:.2f} | "
                                 f"{tables.PAPER_PIXELS.get(data, float('nan')):.2f} |")
        header = f"{spec.table.title}. {describe(spec)}"
        markdown, rows = tables.render(spec.table, cells, spec.seeds, header, extra, rates)
        if seconds is not None:
            markdown += f"\nWall time of this command: {seconds:.0f} s.\n"
        tables.write(markdown, rows, spec.out, spec.what)
        written += [spec.out / f"{spec.what}.{ext}" for ext in ("md", "csv", "json")]
    written += write_figures(spec)
    return markdown + "".join(f"wrote {path}\n" for path in written)


def write_figures(spec: SweepSpec) -> list[Path]:
    """The figures that go with the table: Figure 3 and the learning curves for Table 1; for
    `figures`, each data set and latent size's interpolation grids, linear and spherical (slerp,
    the release's second grid: `...-slerp.png`), and decoded N(0, I) codes of every model with that
    prior (VAE, AAE: `...-MODEL-samples.png`; Figure 4 is the VAE's on lines)."""
    from . import figures
    from .models import MODELS
    from .tables import PAPER_TABLE1
    from .run import LOG

    written = []
    seed0 = {}
    for run in spec.runs():
        if run.seed == 0 and finished(run, spec.out) is not None:
            seed0.setdefault((run.data, run.dz), {})[run.model] = run.folder(spec.out)
    figures_dir = spec.out if spec.what == "table1" else spec.out / "figures"
    for (data, dz), folders in seed0.items():
        if data == "lines":
            written.append(figures.figure3(folders, figures_dir / "figure3.png"))
            if spec.what == "figures":
                written.append(figures.figure3(folders, figures_dir / "figure3-slerp.png", mode="slerp"))
        elif spec.what == "figures":
            number = figures.FIGURE_NUMBERS.get((data, dz))
            stem = f"{'figure%d-' % number if number else ''}{data}-dz{dz}"
            for mode, suffix in (("linear", ""), ("slerp", "-slerp")):
                written.append(figures.interpolation_figure(folders, spec.pairs, figures_dir / f"{stem}{suffix}.png",
                                                            mode=mode))
        if spec.what == "figures":
            for model, folder in folders.items():
                if MODELS[model].PRIOR is not None:
                    name = "figure4-lines" if (data, model) == ("lines", "vae") else f"{data}-dz{dz}"
                    written.append(figures.prior_samples(folder, figures_dir / f"{name}-{model}-samples.png"))
    if spec.what == "table1":
        histories = {}
        for run in spec.runs():
            log = run.folder(spec.out) / LOG
            if log.exists():
                histories.setdefault(run.model, []).append(ckpt.read_json_lines(log))
        if histories:
            paper = {m: (v[0][0], v[1][0]) for m, v in PAPER_TABLE1.items()}
            written.append(figures.learning_curves(histories, paper, spec.out / "curves.png", curves_title(spec)))
    return written
