"""Ship a finished run as a pretrained model: its weight file and manifest entry in acai/pretrained/.

    .venv/bin/python benchmarks/export_pretrained.py results/table1-quick/runs/lines-dz64/acai/seed0 lines-acai

replaces (or adds) pretrained:lines-acai with the autoencoder of that run, in float16 where that moves neither
lines metric by more than 2 % (acai.pretrained.export), and prints the entry. The recipe it records is the
preset whose recipe and budget trained the run, found by comparing its config with each preset's
(acai/reproduce/presets.py); a run that no preset trained is recorded as "custom".
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from acai import pretrained  # noqa: E402
from acai.reproduce.presets import PRESETS, RECIPE_FIELDS  # noqa: E402
from acai.training.config import ConfigError, TrainConfig  # noqa: E402
from acai.training.run_folder import METRICS, METRICS_KEYS  # noqa: E402
from acai.training import checkpoint as ckpt  # noqa: E402


def preset_of(config: dict) -> str:
    """The preset whose budget and recipe give `config`'s fields for its model and data, else "custom"."""
    papers = TrainConfig().to_dict()  # what a preset with the paper's recipe leaves as it is
    defaults = {key: papers[key] for key in (*RECIPE_FIELDS, "precision")}
    for name, preset in PRESETS.items():
        for bfloat16_here in (False, True):
            fields = preset.budget(config["data"]).config(config["model"], bfloat16_here=bfloat16_here)
            if all(config.get(key) == value for key, value in {**defaults, **fields}.items()):
                return name
    return "custom"


def run_label(folder: Path) -> str:
    """The run folder as a project names it: from its results/ folder on, else as given."""
    parts = folder.resolve().parts
    return str(Path(*parts[parts.index("results"):])) if "results" in parts else str(folder)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run folder (metrics.json, checkpoint.pt)")
    parser.add_argument("name", help="the pretrained model's name, e.g. lines-acai")
    parser.add_argument("--recipe", default=None, help="the recipe to record (default: the preset that trained it)")
    args = parser.parse_args(argv)
    try:
        config = ckpt.read_json(args.run / METRICS, METRICS_KEYS)["config"] if (args.run / METRICS).exists() else {}
        recipe = args.recipe or (preset_of(config) if config else "custom")  # no config: export refuses the folder
        item = pretrained.export(args.run, args.name, recipe, run_label(args.run))
    except ConfigError as error:
        print(f"export_pretrained: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({args.name: item.to_dict()}, indent=2))
    print(f"wrote {pretrained.DIRECTORY / item.file} ({item.bytes:,} bytes, {item.precision}) and "
          f"{pretrained.manifest_path()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
