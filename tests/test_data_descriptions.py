"""What a data set offers is declared once, by name (acai/core/data `describe_data`), and asked for
there: by a saved config, a preset's budgets, a sweep's latent sizes, the report and the figures."""
import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import acai.core.data as data
from acai.core.data import (DESCRIPTIONS, DRAWN_LINES, IMAGE_FILES, NAMES, Capability, DataError, Kind, describe_data,
                            get_source)
from acai.reproduce.plan import SweepSpec
from acai.reproduce.presets import PRESETS
from acai.reproduce.tables import LATENTS
from acai.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_every_data_set_is_described_by_its_name():
    assert set(NAMES) == set(DESCRIPTIONS) | {"folder:PATH"}
    assert describe_data("lines") is DRAWN_LINES
    for name in ("mnist", "svhn", "cifar10", "celeba", "folder:/any/where"):
        assert describe_data(name) is IMAGE_FILES
    assert DRAWN_LINES.offers(Capability.LINES) and not DRAWN_LINES.offers(Capability.TRAIN_SET)
    assert IMAGE_FILES.offers(Capability.TRAIN_SET) and not IMAGE_FILES.offers(Capability.LINES)
    assert (DRAWN_LINES.kind, DRAWN_LINES.reads_files, DRAWN_LINES.fixed_latent) == (Kind.LINES, False, True)
    assert (IMAGE_FILES.kind, IMAGE_FILES.reads_files, IMAGE_FILES.fixed_latent) == (Kind.IMAGES, True, False)
    with pytest.raises(DataError, match="unknown data set 'imagenet'"):
        describe_data("imagenet")
    with pytest.raises(dataclasses.FrozenInstanceError):
        DRAWN_LINES.reads_files = True


def test_a_loaded_source_offers_what_its_name_declares(tmp_path):
    for i in range(12):
        Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(tmp_path / f"{i}.png")
    for name in ("lines", f"folder:{tmp_path}"):
        assert get_source(name).capabilities == describe_data(name).capabilities, name


def test_what_a_data_set_is_asked_comes_from_its_description(monkeypatch, tmp_path):
    """Describe MNIST as drawn lines are: every place that asks then treats it so, whatever its name."""
    monkeypatch.setitem(data.DESCRIPTIONS, "mnist", DRAWN_LINES)
    quick = PRESETS["quick"]
    assert quick.budget("mnist") is quick.lines and quick.budget("svhn") is quick.images
    spec = SweepSpec(what="table3", out=tmp_path, preset=quick, seeds=1, latents=(256,))
    assert spec.latent_sizes("mnist") == LATENTS["mnist"]  # its own, neither the preset's first nor --latents
    assert spec.latent_sizes("svhn") == (256,)
    assert spec.run("mnist", LATENTS["mnist"][0], "baseline", 0).config.dz is None
    fields = {d: TrainConfig(data="mnist", data_dir=str(tmp_path / d)).trained_fields() for d in ("a", "b")}
    assert fields["a"] == fields["b"] and "data_dir" not in fields["a"]  # drawn: no data root identifies it
    monkeypatch.setitem(data.DESCRIPTIONS, "mnist", IMAGE_FILES)
    assert "data_dir" in TrainConfig(data="mnist", data_dir=str(tmp_path)).trained_fields()


def data_name_comparisons(source: str) -> list[int]:
    """The lines of `x == "lines"`, `x != "svhn"`, `x in ("mnist", ...)`: a data set recognised by its name."""
    names = set(DESCRIPTIONS)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            constants = [c for side in sides for c in (side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set))
                                                       else [side]) if isinstance(c, ast.Constant)]
            if any(c.value in names for c in constants):
                found.append(node.lineno)
    return found


def test_no_code_recognises_a_data_set_by_its_name():
    # acai/__init__.py's `name == "lines"` looks up the module acai.core.lines as an attribute, not a data set.
    paths = [p for p in (*(ROOT / "acai").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py"))
             if p != ROOT / "acai" / "__init__.py"]
    assert [f"{p.relative_to(ROOT)}:{line}" for p in paths for line in data_name_comparisons(p.read_text())] == []


def test_the_name_check_finds_each_form():
    source = 'a = data == "lines"\nb = "svhn" != x.data\nc = d in ("mnist", "folder")\nd = e == "lines2"\n'
    assert data_name_comparisons(source) == [1, 2, 3]
