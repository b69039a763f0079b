"""The SLURM executor against a real SLURM (scripts/slurm-local.sh starts one on this machine; CI does).

A tiny sweep through a job array gives the inline executor's table; a task cancelled mid-run
and a task requeued mid-run (SIGUSR2, submitit's requeue path) both resume to bit-identical
runs; a second `reproduce` on the same OUT is refused while the first runs, and one started
after the first was killed waits for the same array; `acai status` names each state.
"""
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from acai.training.config import ConfigError
from acai.reproduce.executors import Inline
from acai.reproduce.slurm import Slurm, read_record
from acai.reproduce.status import status
from acai.reproduce.plan import plan, write_sweep
from acai.reproduce.sweep import reproduce

from conftest import tiny_sweep


def _cluster_problem() -> str | None:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "SLURM is not installed (sudo bash scripts/slurm-local.sh starts a one-node cluster)"
    result = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if result.returncode != 0 or not {"idle", "mix", "alloc"} & set(result.stdout.split()):
        return f"no SLURM node is up (sinfo: {(result.stdout + result.stderr).strip() or 'nothing'})"
    return None


pytestmark = pytest.mark.skipif(_cluster_problem() is not None, reason=str(_cluster_problem()))

TESTS = Path(__file__).resolve().parent
# Runs long enough (several seconds of training and evaluation) to be caught mid-run, checkpointing often.
LONG = dict(models=("baseline",), seeds=2, overrides=dict(samples=3072, eval_every=1024, checkpoint_seconds=0.2))
# A submitting process, as `acai reproduce --executor slurm` is one, for a sweep of tiny runs.
SUBMITTER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from conftest import tiny_sweep
from acai.training.config import ConfigError
from acai.reproduce.slurm import Slurm
from acai.reproduce.sweep import reproduce
try:
    reproduce(tiny_sweep("table1", sys.argv[2], **json.loads(sys.argv[3])), Slurm(**json.loads(sys.argv[4])))
except ConfigError as error:
    print(f"acai: error: {error}", file=sys.stderr)
    sys.exit(2)
"""


def submitter(out, options: dict, **slurm) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SUBMITTER, str(TESTS), str(out), json.dumps(options),
                             json.dumps({"poll": 1, **slurm})], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(condition, what: str, out=None, timeout: float = 240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{status(out)}" if out else ""))


def states(out) -> dict[str, str]:
    """{run id: state} from `acai status` ({} until the submitter has written the sweep)."""
    if not (Path(out) / "sweep.json").exists():
        return {}
    return {line.split()[0]: line.split()[1] if line.split()[1] != "not" else "not started"
            for line in status(out).splitlines() if line.startswith("  ")}


def logged(folder) -> int:
    log = Path(folder) / "log.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


def same_run(a: Path, b: Path) -> None:
    """Bit-identical training: every logged evaluation, the reported metrics and the final weights."""
    assert (a / "log.jsonl").read_text() == (b / "log.jsonl").read_text()
    # Not compared: timing, and the code's commit (a commit made while the tests run changes it).
    # Compared as JSON text, so that an undefined (NaN) Smoothness on both sides counts as equal.
    skip = ("seconds", "samples_per_second", "git_commit", "git_dirty")
    metrics_a, metrics_b = (json.loads((f / "metrics.json").read_text()) for f in (a, b))
    assert (json.dumps({k: v for k, v in metrics_a.items() if k not in skip}, sort_keys=True)
            == json.dumps({k: v for k, v in metrics_b.items() if k not in skip}, sort_keys=True))
    weights_a, weights_b = (torch.load(f / "checkpoint.pt", weights_only=False)["model"] for f in (a, b))
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def task_logs(out, label: str) -> str:
    """The SLURM task logs (all arrays) that show the run `label` (model/data/seedS) training."""
    return "".join(p.read_text() for p in sorted((Path(out) / "slurm").glob("*_log.err")) if f"{label}:" in p.read_text())


def test_sweep_on_slurm_gives_the_inline_table(tmp_path):
    options = dict(models=("baseline", "acai"), seeds=2)
    reproduce(tiny_sweep("table1", tmp_path / "slurm", **options), Slurm(poll=1), progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each task (--cpus-per-task 1): float sums depend on the thread count
    try:
        reproduce(tiny_sweep("table1", tmp_path / "inline", **options), Inline(), progress=False)
    finally:
        torch.set_num_threads(threads)
    rows = {name: [{k: v for k, v in row.items() if k != "samples_per_second"}
                   for row in json.loads((tmp_path / name / "table1.json").read_text())] for name in ("slurm", "inline")}
    assert rows["slurm"] == rows["inline"] and len(rows["slurm"]) == 2
    assert set(states(tmp_path / "slurm").values()) == {"done"}
    array = read_record(tmp_path / "slurm")
    assert len(array.units) == 4 and f"SLURM array {array.job}: 4 COMPLETED" in status(tmp_path / "slurm")


@pytest.fixture(scope="module")
def reattached(tmp_path_factory):
    """A sweep whose submitting process is killed while its array runs, then `reproduce` again."""
    out = tmp_path_factory.mktemp("reattach")
    first = submitter(out, LONG, max_parallel=1)
    try:
        seen = wait_for(lambda: sorted(states(out).values()) == ["queued", "running"] and status(out), "a running "
                        "and a queued task", out)
        # other models than the sweep's, so that nothing but the lock can refuse it
        second = subprocess.run([sys.executable, "-m", "acai.cli", "reproduce", "table1", "--executor", "slurm",
                                 "--models", "acai", "--quiet", "--out", str(out)], capture_output=True, text=True)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    job = read_record(out).job
    alive = states(out)  # the array outlives its submitter
    third = submitter(out, LONG)
    stdout, stderr = third.communicate(timeout=240)
    return dict(out=out, job=job, seen=seen, second=second, alive=alive, third=(third.returncode, stdout, stderr),
                pid=first.pid)


def test_a_second_reproduce_is_refused_while_the_first_runs(reattached):
    second = reattached["second"]
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1 and f"is being written by acai process {reattached['pid']}" in second.stderr
    assert f"SLURM array {reattached['job']}: 1 PENDING, 1 RUNNING" in reattached["seen"]


def test_reproduce_reattaches_to_the_array_of_a_killed_submitter(reattached):
    out, (code, _, stderr) = reattached["out"], reattached["third"]
    assert {"queued", "running"} & set(reattached["alive"].values()), reattached["alive"]  # it outlived its submitter
    assert code == 0, stderr
    assert f"re-attaching to SLURM array {reattached['job']}" in stderr and "submitted SLURM" not in stderr
    assert read_record(out).job == reattached["job"]
    assert {p.name.split("_")[0] for p in (out / "slurm").glob("*_log.err")} == {reattached["job"]}
    assert [row["model"] for row in json.loads((out / "table1.json").read_text())] == ["baseline"]
    assert set(states(out).values()) == {"done"}


def test_cancelled_and_requeued_tasks_resume_to_identical_runs(tmp_path, reattached):
    out = tmp_path / "sweep"
    first = submitter(out, LONG, max_parallel=2)
    runs = {seed: out / "runs" / "lines-dz64" / "baseline" / f"seed{seed}" for seed in (0, 1)}
    try:
        wait_for(lambda: all(logged(folder) >= 1 for folder in runs.values())
                 and set(states(out).values()) == {"running"}, "both runs to log an evaluation", out)
        array = read_record(out)
        task = {seed: array.tasks[array.units.index(f"lines-dz64/baseline/seed{seed}")] for seed in (0, 1)}
        # seed 0: SLURM's warning before a time limit or a preemption -> save, requeue, resume
        subprocess.run(["scancel", "--signal=USR2", task[0]], check=True)
        subprocess.run(["scancel", task[1]], check=True)  # seed 1: cancelled -> saved, resumable
        wait_for(lambda: states(out)["lines-dz64/baseline/seed0"] == "queued", "the requeued task to wait", out)
        stdout, stderr = first.communicate(timeout=180)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("acai: error: 1 of 2 units failed") and f"{task[1]} CANCELLED" in last, last
    assert states(out) == {"lines-dz64/baseline/seed0": "done", "lines-dz64/baseline/seed1": "resumable"}
    assert f"SLURM task {task[1]} CANCELLED" in status(out)
    again = submitter(out, LONG)
    _, stderr = again.communicate(timeout=180)
    assert again.returncode == 0, stderr
    assert read_record(out).units == ("lines-dz64/baseline/seed1",)  # only the unfinished unit ran again
    assert "Requeued job" in (out / "slurm" / f"{task[0]}_0_log.out").read_text()  # by submitit, after the save
    for seed, folder in runs.items():
        log = task_logs(out, f"baseline/lines/seed{seed}")
        assert "resuming at sample" in log and "of 3,072" in log, log  # continued, not restarted
        same_run(folder, reattached["out"] / "runs" / "lines-dz64" / "baseline" / f"seed{seed}")


def test_failures_come_back_as_one_line_and_status_names_them(tmp_path):
    spec = tiny_sweep("table1", tmp_path, models=("baseline",))
    write_sweep(spec, plan(spec))
    assert states(tmp_path) == {"lines-dz64/baseline/seed0": "not started"}
    run = tmp_path / "runs" / "lines-dz64" / "baseline" / "seed0"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")  # the task fails on loading it
    with pytest.raises(ConfigError, match=r"1 of 1 units failed .*checkpoint.pt is not a readable checkpoint"):
        reproduce(spec, Slurm(poll=1), progress=False)
    assert states(tmp_path) == {"lines-dz64/baseline/seed0": "failed"}
    assert "is not a readable checkpoint" in status(tmp_path)
    with pytest.raises(ConfigError, match="sbatch refused the array: .*[Ii]nvalid partition"):
        Slurm(partition="no-such-partition").submit(plan(spec), tmp_path)
    with pytest.raises(ConfigError, match="would hold GPUs idle"):
        Slurm(gpus_per_task=1).submit(plan(spec), tmp_path)
