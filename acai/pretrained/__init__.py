"""Trained autoencoders shipped with acai, loaded by name: try a method before training it.

    import acai.pretrained
    acai.pretrained.names()                       # ('lines-acai', 'lines-baseline')
    model = acai.pretrained.load("lines-acai")    # eval mode: model.encode(x), model.decode(z)

and from the command line `acai pretrained` (the list), `acai interpolate pretrained:lines-acai --out g.png`,
`acai evaluate`, `acai samples`, `acai probe` and `acai cluster` with pretrained:NAME in place of a run folder.

This folder holds manifest.json, one entry per model (its training config, what it scored, its file's SHA-256),
and one weight file per model: the state of the autoencoder alone (the networks of its "ae" group, which
encode and decode, and their buffers), without the optimisers, the tandem probe or a critic, in float16 where
that moves neither lines metric by more than 2 % of float32's (`FLOAT16_TOLERANCE`), else in float32.
Loading checks the SHA-256 first: a missing or damaged file is a `DamagedPretrained` error, never a model with
other weights. `export` (benchmarks/export_pretrained.py) writes a file and its entry from a finished run folder.

Placed in the training layer (tests/test_layers.py): it builds models as a run does, and the measures read
the weights it resolves (`resolve`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from acai import __version__
from acai.core.data import Capability, get_source, offers
from acai.training import checkpoint as ckpt
from acai.training.config import ConfigError, TrainConfig
from acai.training.machine import cpu_model, resolve_device
from acai.training.run import (RunFolder, Trained, TrainedModel, build_model, rescore_lines)
from acai.training.run_folder import CLOCK, METRICS, METRICS_KEYS, state
from acai.core.evaluations import REPORTED

DIRECTORY = Path(__file__).resolve().parent  # the weights and their manifest, shipped as package data
MANIFEST = "manifest.json"
PREFIX = "pretrained:"  # how a command's RUN_OR_PRETRAINED argument names a shipped model
FORMAT = 1  # of manifest.json
AUTOENCODER_GROUP = "ae"  # every model's group of the networks that encode and decode (core/models/common.py)
FLOAT16_TOLERANCE = 0.02  # float16 is shipped when both lines metrics stay within this fraction of float32's
NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")  # a model's name is also the start of its file's name
REINSTALL = "reinstall acai (in a git checkout: git checkout -- acai/pretrained)"


class PretrainedError(ConfigError):
    """A shipped model cannot be loaded; the message is one line that says why and what to do. A
    ConfigError, so the command line ends with it in one line and exit code 2."""


class UnknownPretrained(PretrainedError):
    """No shipped model has this name."""


class DamagedPretrained(PretrainedError):
    """A shipped file is missing or is not what the manifest says (its SHA-256 differs, or it does not parse)."""


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One model of the manifest."""

    name: str
    model: str
    data: str
    d_z: int
    recipe: str  # the preset whose recipe and budget trained it (acai/reproduce/presets.py), or "custom"
    samples: int
    date: str  # when it was trained (ISO date), or exported where the run recorded no time: see provenance
    cpu: str  # what trained it, as the run recorded it (or the exporting machine's: see provenance)
    provenance: str  # where date and cpu come from
    run: str  # the run folder it was exported from
    exported: dict  # date, cpu, acai version of the export
    evaluation: int  # the training loop's evaluation at these weights: what `acai evaluate` scores again
    metrics: dict  # the lines metrics of the shipped weights at `evaluation` (`acai evaluate pretrained:NAME`)
    float32_metrics: dict  # the same, of the run's float32 weights: what the float16 check compares with
    run_metrics: dict  # what the run reported (its metrics.json: the median of its last eval_window evaluations)
    precision: str  # "float16" or "float32": how the file stores the weights (they load as float32)
    precision_check: str  # why that precision, in words
    file: str
    sha256: str
    bytes: int
    config: dict  # the run's TrainConfig (data_dir dropped: the data are found where this machine keeps them)

    @classmethod
    def from_dict(cls, name: str, values: object) -> "Entry":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if not isinstance(values, dict):
            raise DamagedPretrained(f"the manifest's entry {name!r} is not an object ({manifest_path()}); {REINSTALL}")
        wrong = sorted((set(fields) - {"name"}) ^ set(values))
        if wrong:
            raise DamagedPretrained(f"the manifest's entry {name!r} has unknown or missing keys {', '.join(wrong)} "
                                    f"({manifest_path()}); {REINSTALL}")
        types = {"str": str, "int": int, "dict": dict}  # the fields' annotations, as text (postponed annotations)
        for key, value in values.items():
            kind = types[str(fields[key].type)]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise DamagedPretrained(f"the manifest's entry {name!r} has a {key} that is not a {kind.__name__} "
                                        f"({manifest_path()}); {REINSTALL}")
        # a file beside the manifest, and a digest that a file can match
        if Path(values["file"]).name != values["file"] or not re.fullmatch(r"[0-9a-f]{64}", values["sha256"]):
            raise DamagedPretrained(f"the manifest's entry {name!r} names no file of this folder or no SHA-256 "
                                    f"({manifest_path()}); {REINSTALL}")
        return cls(name=name, **values)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        del values["name"]  # the manifest's key
        return values


def manifest_path() -> Path:
    return DIRECTORY / MANIFEST


def entries() -> dict[str, Entry]:
    """Every shipped model by name, from the manifest (read at each call: it is small)."""
    try:
        manifest = json.loads(manifest_path().read_text())
    except FileNotFoundError:
        raise DamagedPretrained(f"the pretrained models' manifest is missing ({manifest_path()}); {REINSTALL}") \
            from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DamagedPretrained(f"the pretrained models' manifest is damaged ({manifest_path()}: "
                                f"{type(error).__name__}); {REINSTALL}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("models"),
                                                                                            dict):
        raise DamagedPretrained(f"the pretrained models' manifest is not format {FORMAT} ({manifest_path()}); "
                                f"{REINSTALL}")
    return {name: Entry.from_dict(name, values) for name, values in manifest["models"].items()}


def names() -> tuple[str, ...]:
    return tuple(entries())


def entry(name: str) -> Entry:
    found = entries()
    if name not in found:
        raise UnknownPretrained(f"no pretrained model {name!r}; the shipped ones are {', '.join(found) or 'none'} "
                                f"(acai pretrained lists them)")
    return found[name]


def verified_bytes(item: Entry) -> bytes:
    """The bytes of `item`'s weight file once their SHA-256 is the manifest's."""
    path = DIRECTORY / item.file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DamagedPretrained(f"the weights of pretrained:{item.name} are missing ({path}); {REINSTALL}") from None
    except OSError as error:
        raise DamagedPretrained(f"the weights of pretrained:{item.name} cannot be read ({path}: "
                                f"{error.strerror}); {REINSTALL}") from None
    found = hashlib.sha256(data).hexdigest()
    if found != item.sha256:
        raise DamagedPretrained(f"the weights of pretrained:{item.name} are damaged ({path}: SHA-256 {found[:12]}..., "
                                f"the manifest says {item.sha256[:12]}...); {REINSTALL}")
    return data


def cache_folder(name: str) -> Path:
    """Where measurements of a shipped model are cached (probe.json, cluster.json): the package's own folder
    may be read-only, so beside acai's data in the user's cache."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "acai" / "pretrained" / name


@dataclass(frozen=True)
class Pretrained:
    """A shipped model as `Trained` weights (acai/training/run.py)."""

    item: Entry
    device: str = "cpu"

    @property
    def label(self) -> str:
        return PREFIX + self.item.name

    @property
    def cache(self) -> Path:
        return cache_folder(self.item.name)

    def digest(self) -> str:
        return self.item.sha256  # `check` and `load` refuse a file that is not this

    def check(self, command: str = "load") -> None:
        verified_bytes(self.item)

    def load(self, command: str = "load") -> TrainedModel:
        """The model with the shipped weights, as float32 in eval mode; its networks outside the autoencoder
        (a critic) keep their initial weights and are not what this model is for."""
        state_dict = read_weights(verified_bytes(self.item), self.item)
        config = TrainConfig.from_dict(self.item.config)
        device = resolve_device(self.device)
        source = get_source(config.data, config.data_dir)
        model = build_model(config, source, device, torch.Generator().manual_seed(config.seed))
        expected = autoencoder_state(model)
        misfit = sorted(set(expected) ^ set(state_dict)) or [
            key for key in expected if expected[key].shape != state_dict[key].shape]
        if misfit:
            raise DamagedPretrained(f"the weights of pretrained:{self.item.name} do not fit its model ({misfit[0]}); "
                                    f"the manifest and the file disagree; {REINSTALL}")
        model.load_state_dict(state_dict, strict=False)  # exactly the autoencoder's keys: checked above
        model.eval()
        return TrainedModel(config=config, source=source, model=model, device=device, evaluation=self.item.evaluation)


def read_weights(data: bytes, item: Entry) -> dict[str, torch.Tensor]:
    try:  # weights_only: a weight file holds tensors and nothing that runs code when read
        state_dict = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # the SHA-256 matched, so the manifest itself names a file torch cannot read
        raise DamagedPretrained(f"the weights of pretrained:{item.name} do not parse ({type(error).__name__}); "
                                f"{REINSTALL}") from None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise DamagedPretrained(f"the weights of pretrained:{item.name} are not a state of tensors; {REINSTALL}")
    return state_dict


def get(name: str, device: str = "cpu") -> Pretrained:
    return Pretrained(entry(name), device)


def load(name: str, device: str = "cpu") -> torch.nn.Module:
    """The shipped model `name` in eval mode: encode(x), decode(z), features(x). UnknownPretrained for a
    name not shipped, DamagedPretrained for a file missing or not the one shipped."""
    return get(name, device).load().model


def resolve(source: str | os.PathLike) -> Trained:
    """A command's RUN_OR_PRETRAINED argument: pretrained:NAME, else a run folder written by `acai train`."""
    text = os.fspath(source)
    if text.startswith(PREFIX):
        return get(text[len(PREFIX):])
    return RunFolder(Path(source))


def autoencoder_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of `model`'s state that encode and decode: all but those of the networks that other
    groups than the autoencoder's train (a critic, a discriminator)."""
    others = [module for group, modules in model.GROUPS.items() if group != AUTOENCODER_GROUP for module in modules]
    return {key: value for key, value in model.state_dict().items()
            if not any(key.startswith(module + ".") for module in others)}


def within_tolerance(reference: dict, candidate: dict) -> bool:
    """Both lines metrics of `candidate` within FLOAT16_TOLERANCE of `reference`'s (an undefined one: never)."""
    return all(math.isfinite(reference[key]) and math.isfinite(candidate[key])
               and abs(candidate[key] - reference[key]) <= FLOAT16_TOLERANCE * abs(reference[key])
               for key in ("mean_distance", "smoothness"))


def lines_only(metrics: dict) -> dict:
    return {key: metrics[key] for key in ("mean_distance", "smoothness", "state", "pairs")}


def serialized(tensors: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu().contiguous() for key, value in tensors.items()}, buffer)
    return buffer.getvalue()


def export(folder: str | os.PathLike, name: str, recipe: str, run_label: str | None = None) -> Entry:
    """Write the weight file and manifest entry of the finished run in `folder` as pretrained:`name` into
    DIRECTORY, replacing an entry of that name. `recipe`: the preset that trained it, or "custom".

    The file is named by its SHA-256 and written before the manifest that names it, each atomically: an
    export stopped at any point leaves the previous manifest and files whole."""
    if not NAME.fullmatch(name):
        raise ConfigError(f"pretrained name {name!r}: use lower-case letters, digits, '-' and '.', e.g. lines-acai")
    folder = Path(folder)
    run_state = state(folder)
    if run_state.name != "done":
        raise ConfigError(f"{folder} holds no finished run (it is {run_state.name}); export a run that reached its "
                          f"budget (acai status shows which)")
    trained = RunFolder(folder).load("export")
    lines = offers(trained.source, Capability.LINES)
    float32_state = {key: value.clone() for key, value in autoencoder_state(trained.model).items()}
    float32 = lines_only(rescore_lines(trained)) if lines else {}
    half = {key: value.half() if value.is_floating_point() else value for key, value in float32_state.items()}
    if lines:
        trained.model.load_state_dict(half, strict=False)  # float16-rounded weights, computed in float32
        float16 = lines_only(rescore_lines(trained))
        keep_half = within_tolerance(float32, float16)
        change = ", ".join(f"{label} {100 * (float16[key] - float32[key]) / float32[key]:+.3f} %"
                           for key, label in (("mean_distance", "Mean Distance"), ("smoothness", "Smoothness")))
        check = (f"{'float16' if keep_half else 'float32'}: float16 weights move {change} from float32's "
                 f"({'within' if keep_half else 'beyond'} the {100 * FLOAT16_TOLERANCE:g} % limit)")
    else:
        keep_half, check = False, "float32: no lines metrics to check float16 against"
    data = serialized(half if keep_half else float32_state)
    sha = hashlib.sha256(data).hexdigest()
    metrics_json = ckpt.read_json(folder / METRICS, METRICS_KEYS)
    clock = ckpt.read_json_lines(folder / CLOCK) if (folder / CLOCK).exists() else []
    trained_at = clock[-1].get("time") if clock and isinstance(clock[-1], dict) else None
    now, here = datetime.now(timezone.utc).date().isoformat(), cpu_model()
    recorded_cpu = metrics_json.get("device_name")
    timed = isinstance(trained_at, (int, float)) and not isinstance(trained_at, bool)
    date = datetime.fromtimestamp(trained_at, timezone.utc).date().isoformat() if timed else now
    provenance = "; ".join([
        f"date: the run's last evaluation ({CLOCK})" if timed else "date: of the export (the run recorded no time)",
        f"cpu: as the run recorded it ({METRICS} device_name)" if isinstance(recorded_cpu, str) else
        "cpu: the exporting machine's (the run recorded none)"])
    config = {**trained.config.to_dict(), "data_dir": None}
    item = Entry(name=name, model=trained.config.model, data=trained.config.data,
                 d_z=trained.config.arch(colors=trained.source.shape[0]).dz, recipe=recipe,
                 samples=int(metrics_json["samples"]), date=date,
                 cpu=recorded_cpu if isinstance(recorded_cpu, str) else here, provenance=provenance,
                 run=run_label or str(folder), exported={"date": now, "cpu": here, "acai_version": __version__},
                 evaluation=trained.evaluation, metrics={}, float32_metrics=float32,
                 run_metrics={key: metrics_json[key] for key in (*REPORTED, "state") if key in metrics_json},
                 precision="float16" if keep_half else "float32", precision_check=check,
                 file=f"{name}-{sha[:12]}.pt", sha256=sha, bytes=len(data), config=config)
    previous = entries() if manifest_path().exists() else {}
    ckpt.save_bytes(data, DIRECTORY / item.file, remedy=f"free space, or make {DIRECTORY} writable")
    if lines:  # what `acai evaluate pretrained:NAME` will print: scored from the file just written
        item = dataclasses.replace(item, metrics=lines_only(rescore_lines(Pretrained(item).load("export"))))
    models = {key: value.to_dict() for key, value in {**previous, name: item}.items()}
    ckpt.save_json({"format": FORMAT, "models": dict(sorted(models.items()))}, manifest_path())
    replaced = previous.get(name)
    if replaced is not None and replaced.file != item.file and all(e.file != replaced.file for e in previous.values()
                                                                   if e.name != name):
        (DIRECTORY / replaced.file).unlink(missing_ok=True)
    return item


__all__ = ["DamagedPretrained", "Entry", "Pretrained", "PretrainedError", "UnknownPretrained", "entries", "entry",
           "export", "get", "load", "names", "resolve"]
