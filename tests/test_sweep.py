"""The reproduce layer: a sweep's units, its executors and `acai status`, on tiny runs."""
import dataclasses
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from acai.cli import main
from acai.training.config import ConfigError, TrainConfig
from acai.reproduce.executors import Inline, Local
from acai.reproduce.plan import describe, finished, plan
from acai.reproduce.sweep import reproduce

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


def test_a_data_dir_leaves_lines_runs_as_they_are(tmp_path):
    """`reproduce figures --datasets lines mnist --data-dir D` after `reproduce table1` (no data dir)
    reuses table1's lines runs rather than calling them runs of other settings."""
    reproduce(tiny_sweep("table1", tmp_path, models=("baseline",)), Inline(), progress=False)
    again = tiny_sweep("figures", tmp_path, models=("baseline",), datasets=("lines",), data_dir=str(tmp_path / "data"))
    assert [finished(run, tmp_path) is not None for run in again.runs()] == [True]


def test_figures_train_only_the_seed_they_draw(tmp_path):
    """The figures draw seed 0: at a preset of 3 seeds they must not train seeds 1 and 2 (an ACAI run on
    MNIST is half an hour on a laptop)."""
    units = plan(tiny_sweep("figures", tmp_path, models=("baseline",), datasets=("lines",), seeds=3))
    assert [unit.id for unit in units] == ["lines-dz64/baseline/seed0"]


def test_a_table_says_when_its_evaluation_departs_from_the_paper(tmp_path):
    """--restarts 100 (10x cheaper K-Means) or another probe budget is printed above the table, never silent."""
    table3 = tiny_sweep("table3", tmp_path, datasets=("mnist",))
    assert "K-Means" not in describe(table3)  # the paper's 1,000 restarts say nothing
    fewer = tiny_sweep("table3", tmp_path, datasets=("mnist",), restarts=100)
    assert "K-Means: 100 restarts of at most 1,000 iterations instead of the paper's 1,000" in describe(fewer)
    assert "Probe on final codes" not in describe(tiny_sweep("table2", tmp_path, datasets=("mnist",)))
    shorter = tiny_sweep("table2", tmp_path, datasets=("mnist",), probe_samples=1 << 20)
    assert "1,048,576 samples instead of the preset's 4,194,304" in describe(shorter)


def test_a_composed_model_takes_its_bases_and_acais_departures_at_a_short_preset():
    """BASE+acai's critic plays ACAI's game, so at the quick preset it gets ACAI's stable rate (5e-4), not
    the 1e-3 at which ACAI collapsed; `baseline+acai` trains exactly as `acai`; the VQ-VAE's decay stays."""
    from acai.reproduce.presets import PAPER, PRESETS

    lines = PRESETS["quick"].lines
    assert lines.config("baseline+acai") == lines.config("acai")
    assert lines.config("vae+acai")["lr"] == lines.config("acai")["lr"] != lines.config("vae")["lr"]
    vqvae = lines.config("vqvae+acai")
    assert vqvae["lr"] == lines.config("acai")["lr"] and vqvae["hparams"] == lines.config("vqvae")["hparams"]
    assert lines.config("vae+acai", recipe=PAPER) == lines.config("vae", recipe=PAPER)


def test_only_the_quick_presets_lines_runs_lighten_their_progress_evaluations(tmp_path):
    from acai.reproduce.plan import SweepSpec
    from acai.reproduce.presets import PRESETS

    spec = SweepSpec(what="table1", out=tmp_path, preset=PRESETS["quick"], seeds=1, models=("baseline", "vqvae+acai"))
    assert {run.config.progress_pairs for run in spec.runs()} == {64}
    assert "score 64 pairs and skip the probe" in describe(spec)
    for preset in ("paper", "cpu"):
        assert PRESETS[preset].lines.config("acai")["progress_pairs"] is None
    assert PRESETS["quick"].images.config("acai")["progress_pairs"] is None  # median of 3: whole evaluations


def test_a_presets_bfloat16_models_train_in_it_only_on_a_cpu_that_computes_it(tmp_path, monkeypatch):
    """bfloat16 is a speed lever where the CPU has it (AVX-512 BF16, AMX); emulated on AVX2 it is 7-9x
    slower, so there the same command trains float32, and the table's header says which it was."""
    import acai.training.machine
    from acai.reproduce.plan import SweepSpec
    from acai.reproduce.presets import PRESETS

    long = PRESETS["long"]
    assert long.lines.bfloat16 and not PRESETS["paper"].lines.bfloat16 and not PRESETS["quick"].lines.bfloat16
    models = ("baseline", "acai", "baseline+acai", "vae+acai", "dropout")
    for native in (True, False):
        monkeypatch.setattr(acai.training.machine, "native_bfloat16", lambda device: native)
        spec = SweepSpec(what="table1", out=tmp_path, preset=long, seeds=1, models=models)
        got = {run.model: run.config.precision for run in spec.runs()}
        assert got == {m: "bfloat16" if native and m in long.lines.bfloat16 else "float32" for m in got}
        assert "float32" in got.values() and ("bfloat16" in got.values()) == native
        assert ("float32 for the others" in describe(spec)) == native and ("needs a CPU" in describe(spec)) != native
        assert {run.config.precision for run in SweepSpec(what="table1", out=tmp_path, preset=long, seeds=1,
                                                         models=models, precision="float32").runs()} == {"float32"}
        assert {run.config.precision for run in SweepSpec(what="table1", out=tmp_path, preset=long, seeds=1,
                                                         models=models, recipe="paper").runs()} \
            == {"float32"}  # the paper's recipe is float32
        quick = SweepSpec(what="table1", out=tmp_path, preset=PRESETS["quick"], seeds=1, models=models)
        assert {run.config.precision for run in quick.runs()} == {"float32"}


def test_the_learning_curves_name_the_recipe(tmp_path):
    from acai.reproduce.figures import curves_title
    from acai.reproduce.plan import SweepSpec
    from acai.reproduce.presets import PRESETS

    assert "short recipe" in curves_title(SweepSpec(what="table1", out=tmp_path, preset=PRESETS["quick"], seeds=3))
    faithful = curves_title(SweepSpec(what="table1", out=tmp_path, preset=PRESETS["quick"], seeds=1, recipe="paper"))
    assert "paper's recipe" in faithful and "short" not in faithful and faithful.endswith("1 seed")
    assert "paper's recipe" in curves_title(SweepSpec(what="table1", out=tmp_path, preset=PRESETS["paper"], seeds=3))


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


# A submitting process, as `acai reproduce` is one, with one local worker: argv = tests folder, the
# tiny_sweep's arguments as JSON.
SUBMITTER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from conftest import tiny_sweep
from acai.reproduce.executors import Local
from acai.reproduce.sweep import reproduce
options = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(sys.argv[2]).items()}
try:
    reproduce(tiny_sweep(**options), Local(workers=1, threads=1), progress=False)
except KeyboardInterrupt as stop:
    sys.exit(128 + stop.signum)
"""


def submit(tmp_path, stderr, **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SUBMITTER, str(Path(__file__).parent), json.dumps(options)],
                            stderr=stderr)


def test_sigterm_to_a_local_sweep_stops_its_workers(tmp_path):
    """kill (SIGTERM) reaches only the submitter, not its workers: they must still save and stop, and
    take no queued unit, rather than train on as orphans (the pool hands each worker its next unit early)."""
    runs = tmp_path / "runs" / "lines-dz64" / "baseline"
    log = tmp_path / "stderr.txt"  # a file, not a pipe: an orphaned worker would hold a pipe open
    with log.open("w") as stderr:  # three baseline runs long enough (~1 min each) to be caught in the first
        submitter = submit(tmp_path, stderr, what="table1", out=str(tmp_path), models=["baseline"], seeds=3,
                           overrides=dict(samples=200_000, lr_decay_over=200_000, eval_every=100_000))
    checkpoint = runs / "seed0" / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists():  # written before the first step
        assert time.time() < deadline and submitter.poll() is None, log.read_text()
        time.sleep(0.1)
    time.sleep(1)
    saved = checkpoint.stat().st_mtime_ns
    submitter.send_signal(signal.SIGTERM)
    assert submitter.wait(timeout=60) == 128 + signal.SIGTERM, log.read_text()
    assert checkpoint.stat().st_mtime_ns > saved  # the worker saved its run on the way out
    time.sleep(3)  # time enough for an orphaned worker to start the next unit
    assert not (runs / "seed0" / "metrics.json").exists()
    assert not (runs / "seed1").exists() and not (runs / "seed2").exists()


def test_sigterm_stops_a_local_sweep_in_the_middle_of_k_means(tmp_path):
    """K-Means has no step boundary to save at: a stopped table3 must end within seconds, not once its
    restarts are done (1,000 restarts at d_z 256 took 40 minutes a run on one core), and leave no partial result."""
    from test_data_formats import write_mnist

    data = tmp_path / "data"
    write_mnist(data / "mnist", n_train=200, n_test=50)
    common = dict(datasets=["mnist"], models=["baseline"], data_dir=str(data), lines=False)
    reproduce(tiny_sweep("table3", tmp_path, restarts=2, **common), Inline(), progress=False)  # trains the run
    cluster = tmp_path / "runs" / "mnist-dz32" / "baseline" / "seed0" / "cluster.json"
    assert json.loads(cluster.read_text())["restarts"] == 2
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:  # a million restarts: minutes of K-Means for the one unit
        submitter = submit(tmp_path, stderr, what="table3", out=str(tmp_path), restarts=1_000_000, **common)
    time.sleep(10)  # the worker starts, loads the run, encodes 250 digits and is in K-Means
    assert submitter.poll() is None, log.read_text()
    submitter.send_signal(signal.SIGTERM)
    stopped = time.time()
    assert submitter.wait(timeout=60) == 128 + signal.SIGTERM, log.read_text()
    assert time.time() - stopped < 10, log.read_text()
    assert json.loads(cluster.read_text())["restarts"] == 2  # the earlier result stands; nothing half-written


def test_a_rerun_counts_the_runs_it_reuses_and_shows_the_measurements_after_training(tmp_path):
    """The bar of a sweep that reuses finished runs starts at their samples (it read 0 % at the start
    of a table3 whose runs were all trained), and the minutes of probes and K-Means after training
    show beside the run (the line read "running: -" through them)."""
    from test_data_formats import write_mnist
    from acai.training.progress import SweepDisplay

    write_mnist(tmp_path / "data" / "mnist", n_train=200, n_test=50)
    common = dict(datasets=["mnist"], models=["baseline"], data_dir=str(tmp_path / "data"), lines=False)
    reproduce(tiny_sweep("table3", tmp_path, restarts=2, **common), Inline(), progress=False)  # trains the run
    expected = {  # what the display shows beside each unit while its after-training measurement runs
        "table2": (dict(probe_samples=1024), ["baseline/mnist/seed0 probe 16/16 steps",  # 1,024 samples, batch 64
                                              "pixels-mnist probe 16/16 steps"]),
        "table3": (dict(restarts=5), ["baseline/mnist/seed0 K-Means 5/5 restarts"]),
    }
    for what, (options, after) in expected.items():
        units = plan(tiny_sweep(what, tmp_path, **options, **common))
        total = sum(unit.samples for unit in units)
        assert total > 0 and sum(unit.trained_samples() for unit in units) == total
        stream = io.StringIO()
        Inline().run(units, SweepDisplay(total, what, stream=stream, every=0, done=total))
        lines = stream.getvalue().splitlines()
        assert all(line.startswith(f"{what}: {total:,}/{total:,} samples (100%)") for line in lines), lines
        shown = [line.split("running: ")[1] for line in lines]
        assert all(text in shown for text in after), shown


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ProcessPoolExecutor's max_tasks_per_child is 3.11+")
def test_each_unit_runs_in_a_fresh_worker_process(tmp_path):
    """A worker that had trained and probed about seven MNIST runs in turn held 22.7 GB and was killed
    for memory: each unit now gets a new process, whose memory goes back whole when it ends."""
    from acai.training.progress import SweepDisplay

    workers = set()

    class Recording(SweepDisplay):
        def sink(self, worker, event, *args):
            workers.add(worker)
            super().sink(worker, event, *args)

    units = plan(tiny_sweep("table1", tmp_path, models=("baseline",), seeds=2))
    assert Local(workers=1, threads=1).run(units, Recording(0, "table1", enabled=False)) == {
        unit.id: None for unit in units}
    assert len(units) == 2 and len(workers) == 2, workers  # "worker<pid>": one process per unit


def test_presets_are_checked_when_they_are_made():
    """Keyword-built presets: a recipe key that is not TrainConfig's, a per-model entry that is not a model,
    a hyper-parameter a model does not have, an unchecked bfloat16 model, a preset of no seeds: each fails
    where it is written."""
    from acai.reproduce.presets import PRESETS, Budget, Recipe

    with pytest.raises(ConfigError, match="lr_warm_up.*not TrainConfig fields"):
        Recipe("typo", fields=dict(lr_warm_up=2048))
    with pytest.raises(ConfigError, match="seed.*not a recipe's to set"):
        Recipe("seeded", fields=dict(seed=3))
    with pytest.raises(ConfigError, match="'vaee' is not a model"):
        Recipe("typo", per_model={"vaee": dict(lr=1e-3)})
    with pytest.raises(ConfigError, match="decay"):
        Recipe("typo", per_model={"vae": dict(hparams=dict(decay=0.99))})  # the VQ-VAE's, not the VAE's
    with pytest.raises(ConfigError, match="not checked"):
        Budget(samples=1024, eval_every=512, eval_window=1, bfloat16=("dropout",))
    quick = PRESETS["quick"]
    with pytest.raises(ConfigError, match="seeds must be positive"):
        dataclasses.replace(quick, seeds=0)
    with pytest.raises(ConfigError, match="probe_samples must be positive"):
        dataclasses.replace(quick, probe_samples=0)


def test_the_long_preset_trains_lines_runs_of_two_million_samples_with_one_cosine():
    from acai.reproduce.presets import PRESETS

    long = PRESETS["long"].lines
    acai = TrainConfig(model="acai", **long.config("acai", bfloat16_here=True))
    assert acai.samples == 1 << 21 and acai.eval_every == 1 << 16 and acai.eval_window == 4
    assert acai.lr_decay == "cosine" and acai.decay_steps == acai.steps and acai.lr_warmup == 2048
    assert acai.batch == 16 and acai.precision == "bfloat16"
    assert TrainConfig(model="baseline", **long.config("baseline", bfloat16_here=True)).precision == "float32"


def test_a_sweep_refuses_settings_it_does_not_know(tmp_path):
    from acai.reproduce.plan import SweepSpec

    with pytest.raises(ConfigError, match="eval_evry"):
        tiny_sweep("table1", tmp_path, overrides=dict(eval_evry=64))
    with pytest.raises(ConfigError, match="the sweep sets model"):
        tiny_sweep("table1", tmp_path, overrides=dict(seed=3))
    values = tiny_sweep("table1", tmp_path).to_dict()
    assert SweepSpec.from_dict(values).to_dict() == values
    with pytest.raises(ConfigError, match="no setting workerz"):
        SweepSpec.from_dict({**values, "workerz": 2})
