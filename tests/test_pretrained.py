"""The shipped models (acai/pretrained/): loaded by name, drawn and scored through the same commands as a run
folder, their files checked, and exported from a run folder by benchmarks/export_pretrained.py."""
import fnmatch
import hashlib
import json
import math
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from PIL import Image

from acai import pretrained
from acai.cli import main
from acai.core.lines import LinesSource
from acai.training.loop import train
from acai.training.run_folder import LOG

from conftest import kill_midway, tiny_config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import export_pretrained  # noqa: E402

SHIPPED = pretrained.entries()
LINES_MODELS = [name for name, item in SHIPPED.items() if item.data == "lines"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("acai: error:") and "\n" not in err, err
    return err


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch) -> Path:
    """The package's folder of models copied to tmp_path, and acai.pretrained reading that copy."""
    copy = tmp_path / "pretrained"
    shutil.copytree(pretrained.DIRECTORY, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(pretrained, "DIRECTORY", copy)
    return copy


def test_lines_acai_and_the_baseline_are_shipped_from_the_quick_preset():
    assert {"lines-acai", "lines-baseline"} <= set(pretrained.names())
    for name in ("lines-acai", "lines-baseline"):
        item = SHIPPED[name]
        assert (item.model, item.data, item.d_z, item.recipe, item.samples) == (name[6:], "lines", 64, "quick", 40_960)
        assert item.config["init"] == "he" and item.precision in ("float16", "float32") and item.date[:2] == "20"


@pytest.mark.parametrize("name", LINES_MODELS)
def test_every_shipped_lines_model_scores_its_manifest_values_again(name, capsys):
    assert main(["evaluate", f"pretrained:{name}", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = SHIPPED[name].metrics
    assert result["mean_distance"] == pytest.approx(expected["mean_distance"], abs=1e-6, rel=1e-6)
    assert result["smoothness"] == pytest.approx(expected["smoothness"], abs=1e-6, rel=1e-6)
    assert (result["state"], result["pairs"], result["evaluation"]) == (expected["state"], expected["pairs"],
                                                                       SHIPPED[name].evaluation)


def test_a_shipped_file_holds_the_autoencoder_alone_at_its_precision():
    for item in SHIPPED.values():
        data = (pretrained.DIRECTORY / item.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == item.sha256 and len(data) == item.bytes
        state = torch.load(pretrained.DIRECTORY / item.file, weights_only=True)
        assert state and all(key.startswith(("encoder.", "decoder.")) for key in state)  # no critic, no optimiser
        assert {value.dtype for value in state.values()} == {getattr(torch, item.precision)}
        if item.precision == "float16":  # the check that chose float16 holds for what was shipped
            assert pretrained.within_tolerance(item.float32_metrics, item.metrics)


def test_load_gives_a_model_in_eval_mode_that_encodes_and_decodes_lines():
    model = pretrained.load("lines-acai")
    assert not model.training
    x = LinesSource().evaluation_lines(seed=0, evaluation=99, count=8)
    with torch.no_grad():
        z = model.encode(x)
        reconstruction = model.decode(z)
    assert z[0].numel() == SHIPPED["lines-acai"].d_z and reconstruction.shape == x.shape
    # a trained autoencoder: far closer to its input than the mean of the batch is
    assert ((reconstruction - x) ** 2).mean() < 0.3 * ((x - x.mean(0)) ** 2).mean()


def test_the_listing_names_every_model_with_its_metrics_and_size(capsys):
    assert main(["pretrained"]) == 0
    out = capsys.readouterr().out
    for name, item in SHIPPED.items():
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert item.model in row and f"{item.samples:,}" in row and f"{item.metrics['mean_distance']:.4g}" in row
        assert f"{(pretrained.DIRECTORY / item.file).stat().st_size / 2**20:.1f} MiB" in row
    assert main(["pretrained", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {name: item.to_dict() for name, item in SHIPPED.items()}


def test_interpolate_draws_a_pretrained_model_as_it_draws_a_run_folder(tmp_path, capsys):
    png = tmp_path / "g.png"
    assert main(["interpolate", "pretrained:lines-acai", "--out", str(png), "--pairs", "3", "--steps", "5"]) == 0
    assert "3 linear interpolations of 5 steps by acai" in capsys.readouterr().out
    assert Image.open(png).size[0] > Image.open(png).size[1] > 0
    assert main(["samples", "pretrained:lines-baseline", "--out", str(tmp_path / "s.png"), "--count", "8"]) == 0


@pytest.mark.parametrize("command", ["probe", "cluster"])
def test_probe_and_cluster_refuse_a_lines_model_in_one_line(command, capsys):
    assert main([command, "pretrained:lines-acai", "--quiet"]) == 2
    err = one_line_error(capsys)
    assert "pretrained:lines-acai" in err and "'lines'" in err and "labelled data set" in err


def test_an_unknown_name_is_one_line_naming_the_shipped_ones(capsys):
    assert main(["interpolate", "pretrained:lines-vae", "--out", "g.png"]) == 2
    assert "no pretrained model 'lines-vae'" in one_line_error(capsys) and "lines-acai" in pretrained.names()
    with pytest.raises(pretrained.UnknownPretrained, match="lines-acai"):
        pretrained.load("lines-vae")


def test_a_damaged_weight_file_is_refused_in_one_line(shipped_copy, tmp_path, capsys):
    item = SHIPPED["lines-acai"]
    data = bytearray((shipped_copy / item.file).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, inside a tensor: torch would read it without complaint
    (shipped_copy / item.file).write_bytes(bytes(data))
    for argv in (["interpolate", "pretrained:lines-acai", "--out", str(tmp_path / "g.png")],
                 ["evaluate", "pretrained:lines-acai"], ["probe", "pretrained:lines-acai", "--quiet"]):
        assert main(argv) == 2
        err = one_line_error(capsys)
        assert "pretrained:lines-acai are damaged" in err and "reinstall acai" in err
    assert not (tmp_path / "g.png").exists()
    with pytest.raises(pretrained.DamagedPretrained, match="SHA-256"):
        pretrained.load("lines-acai")
    assert pretrained.load("lines-baseline") is not None  # the others are whole
    assert main(["pretrained"]) == 2  # the list, then the one line
    captured = capsys.readouterr()
    assert "damaged" in next(line for line in captured.out.splitlines() if line.startswith("lines-acai "))
    assert "reinstall acai" in captured.err and captured.err.count("\n") == 1


def test_a_missing_weight_file_or_manifest_is_refused_in_one_line(shipped_copy, tmp_path, capsys):
    (shipped_copy / SHIPPED["lines-baseline"].file).unlink()
    assert main(["evaluate", "pretrained:lines-baseline"]) == 2
    assert "pretrained:lines-baseline are missing" in one_line_error(capsys)
    with pytest.raises(pretrained.DamagedPretrained, match="missing"):
        pretrained.load("lines-baseline")
    manifest = shipped_copy / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    assert main(["interpolate", "pretrained:lines-acai", "--out", str(tmp_path / "g.png")]) == 2
    assert "manifest is damaged" in one_line_error(capsys)
    manifest.unlink()
    assert main(["pretrained"]) == 2
    assert "manifest is missing" in one_line_error(capsys)


def test_float16_is_kept_only_within_two_percent_of_float32():
    reference = {"mean_distance": 0.004, "smoothness": 0.4}
    assert pretrained.within_tolerance(reference, {"mean_distance": 0.00407, "smoothness": 0.393})
    assert not pretrained.within_tolerance(reference, {"mean_distance": 0.00409, "smoothness": 0.4})
    assert not pretrained.within_tolerance(reference, {"mean_distance": 0.004, "smoothness": 0.41})
    assert not pretrained.within_tolerance({**reference, "smoothness": math.nan}, {**reference, "smoothness": math.nan})


def test_evaluate_scores_a_run_folder_as_its_training_loop_did(tmp_path, capsys):
    """The VAE samples its codes: equal values need the training loop's lines and its generator too."""
    run = tmp_path / "vae"
    train([tiny_config("vae")], [run], progress=False)
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    last = json.loads((run / LOG).read_text().splitlines()[-1])
    assert result["evaluation"] == last["evaluation"] and result["pairs"] == last["pairs"]
    assert result["mean_distance"] == pytest.approx(last["mean_distance"], abs=1e-6, rel=1e-6)
    assert result["smoothness"] == pytest.approx(last["smoothness"], abs=1e-6, rel=1e-6)
    assert main(["evaluate", str(run)]) == 0
    assert capsys.readouterr().out.startswith(f"{run}: Mean Distance {result['mean_distance']:.6g}")


def test_export_ships_a_run_that_evaluate_scores_as_the_manifest_says(shipped_copy, tmp_path, capsys):
    run = tmp_path / "run"
    train([tiny_config("baseline")], [run], progress=False)
    assert export_pretrained.main([str(run), "tiny-baseline"]) == 0
    capsys.readouterr()
    item = pretrained.entry("tiny-baseline")
    last = json.loads((run / LOG).read_text().splitlines()[-1])
    assert item.recipe == "custom" and item.evaluation == last["evaluation"] and item.samples == 256
    assert item.float32_metrics["mean_distance"] == last["mean_distance"]  # the run's own weights, to the bit
    assert item.float32_metrics["smoothness"] == last["smoothness"]
    assert item.provenance.startswith("date: the run's last evaluation") and item.config["data_dir"] is None
    assert main(["evaluate", "pretrained:tiny-baseline", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mean_distance"] == pytest.approx(item.metrics["mean_distance"], abs=1e-6, rel=1e-6)
    assert result["smoothness"] == pytest.approx(item.metrics["smoothness"], abs=1e-6, rel=1e-6)
    assert set(pretrained.names()) == {*SHIPPED, "tiny-baseline"}  # the others kept
    # another run under the same name replaces the entry and its file
    other = tmp_path / "other"
    train([tiny_config("baseline", seed=2)], [other], progress=False)
    assert export_pretrained.main([str(other), "tiny-baseline", "--recipe", "mine"]) == 0
    replaced = pretrained.entry("tiny-baseline")
    assert replaced.recipe == "mine" and replaced.sha256 != item.sha256
    assert not (shipped_copy / item.file).exists() and (shipped_copy / replaced.file).exists()


def test_export_refuses_an_unfinished_run_and_a_bad_name(shipped_copy, tmp_path, capsys):
    kill_midway(tiny_config("baseline", samples=512), tmp_path / "killed")  # killed before its third evaluation
    before = (shipped_copy / "manifest.json").read_text()
    assert export_pretrained.main([str(tmp_path / "killed"), "tiny"]) == 2
    assert "holds no finished run (it is resumable)" in capsys.readouterr().err
    assert export_pretrained.main([str(tmp_path / "killed"), "Tiny Model"]) == 2
    assert "lower-case letters" in capsys.readouterr().err
    assert (shipped_copy / "manifest.json").read_text() == before


def test_the_export_names_the_preset_that_trained_a_run():
    quick = SHIPPED["lines-acai"].config
    assert export_pretrained.preset_of(quick) == "quick"
    assert export_pretrained.preset_of({**quick, "lr": 1e-3}) == "custom"


def test_a_labelled_pretrained_model_is_probed_and_clustered_with_its_results_cached(shipped_copy, tmp_path,
                                                                                    monkeypatch, capsys):
    from test_data_formats import write_mnist

    data = tmp_path / "data"
    write_mnist(data / "mnist", n_train=200, n_test=50)
    run = tmp_path / "mnist"
    train([tiny_config("baseline", data="mnist", data_dir=str(data), scales=3, latent=2, dz=32)], [run],
          progress=False)
    assert export_pretrained.main([str(run), "tiny-mnist"]) == 0
    assert pretrained.entry("tiny-mnist").precision == "float32"  # no lines metrics to check float16 against
    monkeypatch.setenv("ACAI_DATA", str(data))  # the shipped config names no data folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    capsys.readouterr()
    assert main(["probe", "pretrained:tiny-mnist", "--samples", "128", "--eval-every", "64", "--window", "1",
                 "--quiet"]) == 0
    assert "codes of pretrained:tiny-mnist" in capsys.readouterr().out
    assert (tmp_path / "cache" / "acai" / "pretrained" / "tiny-mnist" / "probe.json").exists()
    assert main(["cluster", "pretrained:tiny-mnist", "--restarts", "2", "--iterations", "5", "--quiet"]) == 0
    cluster = tmp_path / "cache" / "acai" / "pretrained" / "tiny-mnist" / "cluster.json"
    assert f"wrote {cluster}" in capsys.readouterr().out
    assert json.loads(cluster.read_text())["checkpoint"] == pretrained.entry("tiny-mnist").sha256
    assert main(["evaluate", "pretrained:tiny-mnist"]) == 2
    assert "trained on mnist" in one_line_error(capsys)


def test_the_shipped_files_are_package_data():
    """pip installs what pyproject's package-data names: the manifest and every file it lists."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = patterns["acai.pretrained"]
    for name in ("manifest.json", *(item.file for item in SHIPPED.values())):
        assert any(fnmatch.fnmatch(name, pattern) for pattern in shipped), name
