"""The reproduce layer: a sweep's units, its executors and `acai status`, on tiny runs."""
import json

import pytest
import torch

from acai.cli import main
from acai.executors import Inline, Local
from acai.sweep import plan, reproduce

from conftest import tiny_sweep


def table(out) -> list[dict]:
    return json.loads((out / "table1.json").read_text())


def test_units_run_longest_first_and_twice_is_once(tmp_path):
    spec = tiny_sweep("table1", tmp_path, models=("baseline", "acai"), seeds=2)
    units = plan(spec)
    assert [u.id for u in units][:2] == ["lines-dz64/acai/seed0", "lines-dz64/acai/seed1"]  # ACAI's critic: 3x
    reproduce(spec, Inline(), progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("checkpoint.pt")}
    assert len(stamps) == 4
    for unit in plan(spec):
        unit()  # a finished unit does nothing
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_local_workers_give_the_inline_table(tmp_path):
    spec = dict(models=("baseline", "dropout"), seeds=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker below: a thread count changes float sums, hence the runs
    try:
        reproduce(tiny_sweep("table1", tmp_path / "inline", **spec), Inline(), progress=False)
    finally:
        torch.set_num_threads(threads)
    reproduce(tiny_sweep("table1", tmp_path / "local", **spec), Local(workers=2, threads=1), progress=False)
    for a, b in zip(table(tmp_path / "inline"), table(tmp_path / "local")):
        assert a["model"] == b["model"] and a["mean_distance_states"] == b["mean_distance_states"]
        for key in ("mean_distance_values", "smoothness_values"):
            assert a[key] == pytest.approx(b[key], nan_ok=True), key
    assert (tmp_path / "local" / "curves.png").stat().st_size > 10_000


def test_status_names_each_runs_state(tmp_path, capsys):
    spec = tiny_sweep("table1", tmp_path, models=("baseline", "vae"), seeds=1)
    reproduce(spec, Inline(), progress=False)
    (tmp_path / "runs" / "lines-dz64" / "vae" / "seed0" / "metrics.json").unlink()  # killed before the end
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "lines-dz64/baseline/seed0" in out and "done" in out.split("lines-dz64/baseline/seed0")[1].split("\n")[0]
    assert "resumable" in out.split("lines-dz64/vae/seed0")[1].split("\n")[0]
    assert "lacks 1 run" in out
    assert main(["status", str(tmp_path / "nothing")]) == 2
