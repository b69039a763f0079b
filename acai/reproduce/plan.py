"""A reproduction, planned: a table of the paper as a sweep of idempotent units.

    SweepSpec --plan--> [WorkUnit, ...] --Executor--> run folders --collect--> cells --> tables, figures

* A `SweepSpec` is everything `acai reproduce` was asked for, checked when it is made.
* Every run has a stable id `DATA-dzD/MODEL/seedS` and lives in OUT/runs/ID.
* `plan` groups the runs into units once, the seeds of a model together where
  acai/training/stacked.py `stacks` says they stack (by default on a GPU), and checks
  everything that could fail before anything trains.
* A `Unit` trains or resumes its runs and then makes the measurements its table needs
  afterwards (`Table.after`), each cached in the run folder against the checkpoint it
  read. Running a unit twice does nothing the second time, so a killed sweep, a
  preempted SLURM task or a second `reproduce` just continues.
* Results are read back from the run folders only (`collect`), so any later process can
  write the tables (acai/reproduce/sweep.py) or show the state (`acai status OUT`).
* OUT/sweep.json records the spec and the units (`write_sweep`), so `acai status OUT`, `acai report
  OUT` and a second `reproduce` (which continues where the first stopped) start from the folder alone.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from acai.core.data import Capability, describe_data, get_source
from acai.core.models import COMPOSED, MODELS, base_model, check_name
from acai.measures.cluster import PAPER_ITERATIONS, PAPER_RESTARTS
from acai.reproduce.presets import PAPER, PRESETS, Preset, Recipe
from acai.reproduce.tables import LATENTS, TABLES, After, Cell, Table
from acai.training import checkpoint as ckpt
from acai.training.config import PRECISIONS, ConfigError, TrainConfig
from acai.training.progress import Progress
from acai.training.run_folder import FAILED, finished_run
from acai.training.stacked import DEFAULT_STACK, STACK, check_stackable, stacks

# What a sweep's precision and recipe may be: "preset" follows the preset, model by model.
SWEEP_PRECISIONS = ("preset", *PRECISIONS)
SWEEP_RECIPES = ("preset", "paper")


@dataclass(frozen=True, kw_only=True)
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


@dataclass(kw_only=True)
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
    stack: str = DEFAULT_STACK  # one of STACK: train the seeds of a model together (acai/training/stacked.py `stacks`)
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
        self.datasets = tuple(self.datasets or self.table.datasets)
        unknown = [d for d in self.datasets if d not in self.table.datasets]
        if unknown:
            lines = all(describe_data(data).offers(Capability.LINES) for data in self.table.datasets)
            what = " (the lines benchmark)" if lines else ""
            raise ConfigError(f"{self.what} covers {', '.join(self.table.datasets)}{what}; got {', '.join(unknown)}")
        for model in self.models:
            check_name(model)
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {self.seeds}")
        if self.precision not in SWEEP_PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; use {', '.join(SWEEP_PRECISIONS[:-1])} or "
                              f"{SWEEP_PRECISIONS[-1]}")
        if self.recipe not in SWEEP_RECIPES:
            raise ConfigError(f"unknown recipe {self.recipe!r}; use {' or '.join(SWEEP_RECIPES)}")
        if self.stack not in STACK:
            raise ConfigError(f"unknown stack choice {self.stack!r}; use {', '.join(STACK)}")
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(self.overrides) - (fields - {"model", "data", "seed", "dz", "device", "data_dir"}))
        if unknown:
            raise ConfigError(f"overrides {', '.join(unknown)}: not TrainConfig fields a sweep may override "
                              f"(the sweep sets model, data, seed, dz, device and data_dir itself)")

    @property
    def table(self) -> Table:
        return TABLES[self.what]

    def latent_sizes(self, data: str) -> tuple[int, ...]:
        if describe_data(data).fixed_latent:
            return LATENTS[data]
        if self.latents:
            return self.latents
        return LATENTS[data] if self.preset.all_latents else LATENTS[data][:1]

    def recipe_for(self, data: str) -> Recipe:
        return PAPER if self.recipe == "paper" else self.preset.budget(data).recipe

    @property
    def bfloat16_here(self) -> bool:
        """Do the preset's bfloat16 models train in bfloat16 in this sweep? Only with `precision="preset"`,
        and only on a CPU that computes it natively (AVX-512 BF16, AMX): emulated on AVX2 it is 7-9x slower
        than float32 (docs/speed.md), and on a GPU a sweep stacks its seeds, which train in float32 only."""
        from acai.training.machine import native_bfloat16, resolve_device

        device = resolve_device(self.device)
        return self.precision == "preset" and device.type == "cpu" and native_bfloat16(device)

    def run(self, data: str, dz: int, model: str, seed: int) -> RunSpec:
        values = self.preset.budget(data).config(model, self.recipe_for(data), bfloat16_here=self.bfloat16_here)
        if self.precision != "preset":
            values["precision"] = self.precision
        values.update(self.overrides)
        dz_set = None if describe_data(data).fixed_latent else dz  # None: the architecture's own (DATA_ARCH)
        config = TrainConfig.from_dict(dict(model=model, data=data, dz=dz_set, seed=seed, device=self.device,
                                            data_dir=self.data_dir, **values))
        return RunSpec(data=data, dz=dz, model=model, seed=seed, config=config)

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
        from acai.measures.represent import PROTOCOLS

        samples = self.probe_samples or self.preset.probe_samples
        return dict(samples=samples, eval_every=1 << 16, window=20, **PROTOCOLS["classify_fc"])

    def to_dict(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return values | dict(out=str(self.out), preset=self.preset.name, models=list(self.models),
                             datasets=list(self.datasets), latents=list(self.latents))

    @classmethod
    def from_dict(cls, values: dict) -> "SweepSpec":
        values = dict(values)
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"a sweep has no setting {', '.join(unknown)}; known: "
                              f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        if values["preset"] not in PRESETS:
            raise ConfigError(f"unknown preset {values['preset']!r}; choose one of {', '.join(PRESETS)}")
        values["preset"] = PRESETS[values["preset"]]
        if isinstance(values.get("stack"), bool):  # sweep.json of earlier versions stored the decision itself
            values["stack"] = "on" if values["stack"] else "off"
        for key in ("models", "datasets", "latents"):
            values[key] = tuple(values[key])
        return cls(**values)


def finished(run: RunSpec, out) -> dict | None:
    """The metrics of a finished run of the sweep (acai/training/run_folder.py `finished_run`), else None."""
    return finished_run(run.folder(out), run.config)


class WorkUnit(Protocol):
    """What an executor runs (acai/reproduce/executors.py, slurm.py): idempotent, and read back from folders."""

    out: str
    members: tuple[RunSpec, ...]  # the runs it trains; none for a measurement without training

    @property
    def id(self) -> str: ...

    @property
    def samples(self) -> int: ...

    def cost(self) -> float:
        """Relative work, so that the longest units start first."""

    def trained_samples(self) -> int:
        """Samples of its runs that finished before this sweep (they report no progress)."""

    def settled(self) -> bool:
        """Nothing left to do: a task for it would only find its results cached."""

    def __call__(self, progress=None) -> None: ...


@dataclass
class Unit:
    """Train (or resume) `members`, stacked when there are several (decided by `plan`), then make the
    measurements `after` on each (the probe on final codes, clustering), each with its options."""

    out: str
    members: tuple[RunSpec, ...]
    after: tuple[tuple[After, dict], ...] = ()

    @property
    def id(self) -> str:
        first = self.members[0]
        seeds = ",".join(str(m.seed) for m in self.members)
        return f"{first.data}-dz{first.dz}/{first.model}/seed{'s' if len(self.members) > 1 else ''}{seeds}"

    @property
    def samples(self) -> int:
        return sum(m.config.steps * m.config.batch for m in self.members)

    def cost(self) -> float:
        """ACAI's critic triples a step's work (so BASE+acai costs BASE's work plus about two baselines)."""
        model = self.members[0].model
        per_sample = {"acai": 3.0, "vqvae": 1.6, "denoising": 1.15}.get(base_model(model), 1.0)
        per_sample += 2.0 if model in COMPOSED else 0.0
        return self.samples * per_sample * (1.0 if self.members[0].config.precision == "float32" else 0.6)

    def __call__(self, progress=None) -> None:
        from acai.training.loop import train

        todo = [m for m in self.members if finished(m, self.out) is None]
        if todo:  # several members train as one stack: plan() chose them, and checked that they can
            train([m.config for m in todo], [m.folder(self.out) for m in todo], resume=True,
                  progress=progress if progress else False)
        for member in self.members:
            measure_after(member.folder(self.out), self.after, progress or None,
                          f"{member.model}/{member.data}/seed{member.seed}")

    def trained_samples(self) -> int:
        return sum(m.config.steps * m.config.batch for m in self.members if finished(m, self.out) is not None)

    def settled(self) -> bool:
        """Units that measure after training are never settled here: their measurements are cached."""
        return not self.after and all(finished(member, self.out) is not None for member in self.members)


def measure_after(folder: Path, after, progress: Progress | None = None, label: str = "") -> dict:
    """The measurements `after` ((After, options) pairs) on a finished run's folder, cached there against
    its checkpoint; each shows how far it is on `progress` (a probe: minutes; 1,000 K-Means restarts:
    up to an hour) -> {its name: value}."""
    results = {}
    for measurement, options in after:
        with measuring(progress, label, measurement.name, measurement.unit) as tick:
            results[measurement.name] = measurement.measure(folder, options, tick=tick)
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
    members: tuple[RunSpec, ...] = ()  # it trains no autoencoder

    @property
    def id(self) -> str:
        return f"pixels-{self.data}"

    samples = 0

    def cost(self) -> float:
        return self.probe["samples"] * 0.01

    def trained_samples(self) -> int:
        return 0

    def settled(self) -> bool:
        return self.result() is not None

    def __call__(self, progress=None) -> None:
        from acai.measures.represent import pixel_probe

        path = Path(self.out) / f"{self.id}.json"
        if ckpt.cached_json(path, self.probe) is None:
            with measuring(progress or None, self.id, "probe", "steps") as tick:
                result = pixel_probe(self.data, self.data_dir, tick=tick, **self.probe)
            ckpt.save_json({**self.probe, **result}, path)

    def result(self) -> dict:
        return ckpt.cached_json(Path(self.out) / f"{self.id}.json", self.probe)


def pixel_units(spec: SweepSpec) -> list[PixelUnit]:
    return [PixelUnit(str(spec.out), data, spec.data_dir, spec.pixel_options())
            for data in spec.datasets] if spec.table.pixel_baseline else []


def pixel_accuracies(spec: SweepSpec) -> dict[str, float | None]:
    """{data set: the accuracy of its pixel baseline, None while not measured}, for a table that has one."""
    return {unit.data: (unit.result() or {}).get("accuracy") for unit in pixel_units(spec)}


def after_training(spec: SweepSpec) -> tuple[tuple[After, dict], ...]:
    return tuple((measurement, measurement.options(spec)) for measurement in spec.table.after)


def plan(spec: SweepSpec) -> list:
    """Every unit of the sweep, the longest first (so N workers finish together), checked before
    anything trains: stackable members, data sets that load, no folder holding other settings."""
    groups: dict[tuple, list[RunSpec]] = {}
    for run in spec.runs():
        groups.setdefault((run.data, run.dz, run.model), []).append(run)
    units: list = []
    for members in groups.values():
        together = stacks(spec.stack, [m.config for m in members])
        for chunk in ([members] if together else [[m] for m in members]):
            if len(chunk) > 1:
                check_stackable([m.config for m in chunk], [m.folder(spec.out) for m in chunk])
            units.append(Unit(str(spec.out), tuple(chunk), after_training(spec)))
    units += pixel_units(spec)
    for data in spec.datasets:
        get_source(data, spec.data_dir)  # a missing or damaged data set: one line now, not in a worker
    for unit in units:
        for member in unit.members:
            finished(member, spec.out)  # a folder of other settings: an error now
    return sorted(units, key=lambda unit: -unit.cost())


def collect(spec: SweepSpec) -> tuple[dict, dict]:
    """Read every run of the sweep from its folder -> ({(data, dz): {model: {key: Cell}}}, rates)."""
    cells: dict = {}
    rates: dict = {}
    after = after_training(spec)
    for run in spec.runs():
        folder = run.folder(spec.out)
        metrics = finished(run, spec.out)
        failed = ckpt.read_json(folder / FAILED, {}) if (folder / FAILED).exists() else None
        if metrics is None and failed is None:
            raise ConfigError(f"{folder} has not finished; run the sweep to the end first (acai status "
                              f"{spec.out} shows what is missing)")
        state = "diverged" if failed else metrics.get("state", "ok")
        values = {**(metrics or {}), **({} if failed else measure_after(folder, after))}
        for measure in spec.table.measures:
            cell = cells.setdefault((run.data, run.dz), {}).setdefault(run.model, {}).setdefault(
                measure.key, Cell([], []))
            key = measure.after.name if measure.after else measure.key
            cell.values.append(float(values.get(key, math.nan)))
            cell.states.append(state)
        if metrics:
            rates.setdefault((run.data, run.dz, run.model), []).append(metrics["samples_per_second"])
    return cells, {key: sum(v) / len(v) for key, v in rates.items()}


SWEEP = "sweep.json"  # what OUT holds: the spec and every unit, for `acai status` and re-attaching


def write_sweep(spec: SweepSpec, units: list) -> None:
    """OUT/sweep.json: this sweep's spec and units, and the spec of every table written into OUT (the report
    shows each: table2 and table3 share their runs)."""
    path = spec.out / SWEEP
    previous = ckpt.read_json(path, {}).get("tables") if path.exists() else None
    written = {**(previous if isinstance(previous, dict) else {}), spec.table.name: spec.to_dict()}
    ckpt.save_json(dict(spec=spec.to_dict(), units=[unit.id for unit in units], written=time.time(), tables=written),
                   path)


def read_sweep(out) -> SweepSpec:
    path = Path(out) / SWEEP
    if not path.exists():
        raise ConfigError(f"{out} holds no sweep ({SWEEP} is missing); start one with acai reproduce ... --out {out}")
    try:
        return SweepSpec.from_dict(ckpt.read_json(path, {"spec": dict})["spec"])
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as error:
        # A sweep.json that parses but is not a spec (a key missing, a value of another kind): one line
        # naming the file, whatever from_dict tripped on.
        what = str(error) if isinstance(error, ConfigError) else f"{type(error).__name__}: {error}"
        if str(path) in what:
            raise
        raise ConfigError(f"{path} is not a sweep that acai wrote ({what.splitlines()[0][:160]}); delete it and start "
                          f"the sweep again with acai reproduce ... --out {out} (finished runs are reused)") from None


def describe(spec: SweepSpec) -> str:
    """The line printed above a table: budget, recipe and every departure from the paper."""
    parts = []
    first_of_kind: dict = {}  # one data set of each kind stands for its kind's budget
    for data in spec.datasets:
        first_of_kind.setdefault(describe_data(data).kind, data)
    for kind, data in first_of_kind.items():
        budget = spec.preset.budget(data)
        recipe = budget.describe(spec.recipe_for(data), spec.precision, bfloat16_here=spec.bfloat16_here)
        parts.append(f"{kind.value}: {budget.samples:,} samples per run, median of the last {budget.eval_window} "
                     f"evaluation{'s' if budget.eval_window > 1 else ''}, {recipe}")
    text = f"Preset `{spec.preset.name}`: " + "; ".join(parts) + "."
    if spec.overrides:
        text += f" Overridden for every run: {json.dumps(spec.overrides, sort_keys=True)}."
    if spec.precision != "preset":
        text += f" Precision {spec.precision} for every model."
    if spec.preset.departures:  # of the budget; the recipe is said above
        text += " Departs from the paper: " + "; ".join(spec.preset.departures) + "."
    # What the command line changed in the measurements after training (fewer K-Means restarts, another
    # probe budget) must not read like the preset's.
    text += "".join(" " + said for said in (m.departure(spec) for m in spec.table.after) if said)
    return text
