"""The benchmark scripts' own measurements (the speed figures in docs/speed.md come from them)."""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import timing  # noqa: E402
import train_throughput  # noqa: E402
from timing import seconds_per_call  # noqa: E402

CHILD = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from train_throughput import peak_rss_kib
before = peak_rss_kib()
block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
print(json.dumps((peak_rss_kib() - before) / 2**10))
"""


def test_train_throughput_reads_a_childs_own_memory_rise_under_a_larger_parent():
    """train_throughput times each side's memory in a child process of a parent that has run a large
    convolution. ru_maxrss starts a forked child at its parent's peak, so every rise read 0 MiB there."""
    parent_block = np.ones(1536 * 2**20 // 8)  # this process: 1.5 GiB more than the child will ever hold
    rise = json.loads(subprocess.run([sys.executable, "-c", CHILD, str(BENCHMARKS)], check=True,
                                     capture_output=True, text=True).stdout)
    del parent_block  # held until here: the parent must be the larger while the child runs
    assert 180 <= rise <= 260, rise


def test_seconds_per_call_times_only_the_calls_after_the_warmup():
    calls = []

    def step(i):
        calls.append(i)
        time.sleep(0.3 if i < 2 else 0)  # slow warm-up calls: timed, they would make the mean >= 0.2 s

    assert seconds_per_call(step, [(i,) for i in range(5)], "cpu", warmup=2) < 0.1
    assert calls == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        seconds_per_call(step, [(9,)], "cpu", warmup=1)


def test_seconds_per_call_is_the_mean_of_the_timed_calls(monkeypatch):
    """On a clock that each call moves by a known amount: the mean over the calls after the warm-up, and
    a number of calls stands for that many calls without arguments."""
    clock = [0.0]
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    durations = iter([5.0, 1.0, 2.0, 6.0, 4.0, 8.0, 3.0])

    def step():
        clock[0] += next(durations)

    assert seconds_per_call(step, 4, warmup=1) == 3.0  # (1 + 2 + 6) / 3: the warm-up's 5 s untimed
    assert seconds_per_call(step, 3) == 5.0  # (4 + 8 + 3) / 3: no warm-up, every call timed


def test_stacked_times_every_k_against_one_run():
    """--stacked's worker on a tiny network: a rate per K from each round, and the step-time ratio."""
    args = argparse.Namespace(settings="lines", depth=4, device="cpu", batch=4, steps=1, rounds=2, warmup=1,
                              stacked=[1, 2])
    result = train_throughput.measure_stacked("baseline", args)
    single = result["single"]["samples_per_s"]
    assert single > 0 and [row["seeds"] for row in result["stacked"]] == [1, 2]
    for row in result["stacked"]:
        assert len(row["rounds"]) == 2 and row["samples_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["seeds"] * single / row["samples_per_s"])


RELEASE = BENCHMARKS.parents[1] / "shared" / "reference" / "release-curves"


def write_run(folder: Path, points: list[tuple[int, float, float, float]], model: str = "acai") -> None:
    """A run folder as training leaves it: log.jsonl, clock.jsonl and metrics.json (its config)."""
    folder.mkdir(parents=True)
    folder.joinpath("log.jsonl").write_text("".join(json.dumps(dict(samples=s, mean_distance=md, smoothness=sm)) + "\n"
                                                    for s, md, sm, _ in points))
    folder.joinpath("clock.jsonl").write_text("".join(json.dumps(dict(samples=s, train_seconds=t)) + "\n"
                                                      for s, _, _, t in points))
    folder.joinpath("metrics.json").write_text(json.dumps(dict(config=dict(model=model))))


@pytest.mark.skipif(not RELEASE.exists(), reason="the release's reference curves are not beside this checkout")
def test_time_to_quality_reads_the_release_time_up_to_the_first_evaluation_that_meets_both_thresholds():
    import time_to_quality

    entries = [json.loads(line) for line in (RELEASE / "curve_acai_s0.jsonl").read_text().splitlines()]
    hit = time_to_quality.release_time(RELEASE / "curve_acai_s0.jsonl", 5e-3, 0.15)
    first = next(i for i, e in enumerate(entries) if e["mean_distance"] <= 5e-3 and (e["mean_smoothness"] or 9) <= 0.15)
    assert hit["samples"] == entries[first]["samples"]
    assert hit["train_seconds"] == pytest.approx(sum(e["train_seconds_since_last"] for e in entries[:first + 1]))
    assert time_to_quality.release_time(RELEASE / "curve_acai_s0.jsonl", 1e-6, 0.15)["samples"] is None


@pytest.mark.skipif(not RELEASE.exists(), reason="the release's reference curves are not beside this checkout")
def test_long_runs_figure_and_table(tmp_path, capsys):
    import long_runs

    write_run(tmp_path / "runs" / "acai-seed0", [(65536, 6e-3, 0.2, 200.0), (131072, 3e-3, 0.09, 400.0),
                                                  (196608, 2e-3, 0.08, 600.0), (262144, 1e-3, 0.07, 800.0)])
    assert long_runs.main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "long.png")]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("| acai-seed0 |"))
    # median of the last 4 Mean Distances, the best, the ratio to the paper's 0.24e-3, and the first evaluation
    # at the release's quality after 196,608 samples (both of its seeds' mean: 4.07e-3, 0.102)
    assert "| 2.500 |" in row and "1.000 (262,144)" in row and "4.2×" in row and "131,072, 6.7 min" in row
    assert (tmp_path / "long.png").stat().st_size > 10_000


def test_time_to_quality_has_no_ratio_when_a_seed_never_reaches_the_thresholds():
    import time_to_quality

    release = [dict(seed=0, train_seconds=1000.0), dict(seed=1, train_seconds=800.0)]
    ours = [dict(seed=0, train_seconds=None), dict(seed=1, train_seconds=200.0)]
    assert time_to_quality.speedup(release, ours) == (None, ["ours seed 0"])  # not 900 / 200 from seed 1 alone
    ours[0]["train_seconds"] = 250.0
    assert time_to_quality.speedup(release, ours) == (900.0 / 225.0, [])


def write_release_curve(path: Path, release_class: str, seed: int, points: list[tuple[int, float, float | None]]):
    """A curve file as shared/release-harness/run_release.py writes it (its own field names)."""
    path.write_text("".join(json.dumps(dict(model=release_class, samples=s, mean_distance=md, mean_smoothness=sm,
                                            smoothness_defined=0 if sm is None else 200, seed=seed)) + "\n"
                            for s, md, sm in points))


def test_release_side_by_side_normalises_both_sides_and_says_when_each_left_the_mean_image(tmp_path, capsys):
    import release_side_by_side as sbs

    write_release_curve(tmp_path / "curve_baseline_s0.jsonl", "AEBaseline", 0,
                        [(16384, 30e-3, None), (32768, 19e-3, 0.4), (49152, 12e-3, 0.3)])
    write_release_curve(tmp_path / "curve_baseline_s1.jsonl", "AEBaseline", 1,
                        [(16384, 30e-3, None), (32768, 25e-3, None), (49152, 14e-3, 0.2)])
    write_run(tmp_path / "ours", [(16384, 21e-3, float("nan"), 1.0), (32768, 10e-3, 0.25, 2.0),
                                  (49152, 8e-3, 0.2, 3.0)], model="baseline")
    (tmp_path / "ours" / "metrics.json").write_text(json.dumps(dict(config=dict(model="baseline", seed=0))))
    results = tmp_path / "results"
    assert sbs.main(["collect", "--release", str(tmp_path / "curve_baseline_s0.jsonl"),
                     str(tmp_path / "curve_baseline_s1.jsonl"), "--acai", str(tmp_path / "ours"),
                     "--results", str(results)]) == 0
    assert sorted(p.name for p in results.iterdir()) == ["acai-baseline-s0.jsonl", "release-baseline-s0.jsonl",
                                                         "release-baseline-s1.jsonl"]
    ours = [json.loads(line) for line in (results / "acai-baseline-s0.jsonl").read_text().splitlines()]
    assert ours[0]["smoothness"] is None and ours[1] == dict(samples=32768, mean_distance=10e-3, smoothness=0.25,
                                                             probe_accuracy=None)
    capsys.readouterr()
    assert sbs.main(["draw", "--results", str(results), "--out", str(tmp_path / "sbs.png")]) == 0
    table = capsys.readouterr().out
    release_row = next(line for line in table.splitlines() if line.startswith("| baseline | release |"))
    acai_row = next(line for line in table.splitlines() if line.startswith("| baseline | acai |"))
    assert "| 32k, 48k |" in release_row and "13.00 ± 1.00" in release_row and "0.250 ± 0.050" in release_row
    assert "| 32k |" in acai_row and "| 8.00 |" in acai_row
    assert (tmp_path / "sbs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sbs.main(["draw", "--results", str(tmp_path / "empty")]) == 2


def test_init_study_reads_each_labelled_folder_of_runs(tmp_path, capsys):
    import init_study

    for init, (first, last) in {"release": (30e-3, 25e-3), "he": (15e-3, 5e-3)}.items():
        for seed in (0, 1):
            folder = tmp_path / init / f"vae-s{seed}"
            write_run(folder, [(8192, first, 0.5, 1.0), (40960, last + seed * 1e-3, 0.3 + seed * 0.1, 2.0)], model="vae")
            folder.joinpath("metrics.json").write_text(json.dumps(dict(config=dict(model="vae", seed=seed))))
    assert init_study.main([f"release={tmp_path / 'release'}", f"he={tmp_path / 'he'}", "--at", "40960"]) == 0
    rows = capsys.readouterr().out.splitlines()
    release = next(line for line in rows if line.startswith("| vae | release |"))
    he = next(line for line in rows if line.startswith("| vae | he |"))
    assert "| not yet, not yet |" in release and "| 8k, 8k |" in he
    assert "| 5.50 ± 0.50 | 0.350 ± 0.050 |" in he
    assert init_study.main([f"he={tmp_path / 'missing'}"]) == 2


def test_time_to_quality_records_the_release_curves_relative_to_the_project():
    import time_to_quality

    assert time_to_quality.project_relative(time_to_quality.RELEASE) == "../shared/reference/release-curves"
    assert time_to_quality.project_relative(BENCHMARKS / "results") == "benchmarks/results"


def test_precision_check_fails_a_shift_larger_than_the_seeds_spread_and_passes_noise():
    import precision_check

    f32 = [4.0, 5.0, 6.0]  # float32's seed std: 1.0
    ok = ["ok"] * 3
    same_spread = precision_check.paired_check(f32, [4.5, 4.6, 6.2], ok, ok)  # differences 0.5, -0.4, 0.2
    assert same_spread["pairs"] == 3 and not same_spread["fails"] and same_spread["p"] > 0.05
    shifted = precision_check.paired_check(f32, [7.0, 8.1, 8.9], ok, ok)  # every seed ~3 stds worse
    assert shifted["fails"] and shifted["p"] < 0.05 and shifted["mean_difference"] / shifted["margin"] > 2.5
    tiny_but_consistent = precision_check.paired_check(f32, [4.01, 5.012, 6.011], ok, ok)  # significant, not large
    assert tiny_but_consistent["p"] < 0.05 and not tiny_but_consistent["fails"]
    stuck = precision_check.paired_check(f32, [30.0, 5.1, 6.1], ok, ["mean image", "ok", "ok"])
    assert stuck["fails"] and stuck["unranked_in_bfloat16_only"] == [0] and stuck["pairs"] == 2
    rescued = precision_check.paired_check(f32, [4.1, 5.1, 6.1], ["mean image", "ok", "ok"], ok)
    assert not rescued["fails"] and rescued["unranked_in_float32_only"] == [0]
    assert precision_check.paired_check(f32, f32, ["mean image"] * 3, ok)["pairs"] == 0  # nothing to test


def test_profile_step_accounts_for_the_whole_step_in_its_groups(tmp_path):
    out = tmp_path / "profile.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "profile_step.py"), "--model", "baseline", "--steps", "2",
                           "--warmup", "1", "--out", str(out)], capture_output=True, text=True, cwd=tmp_path,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    groups = {row["group"]: row for row in result["groups"]}
    assert sum(row["share"] for row in groups.values()) == pytest.approx(1.0)
    assert groups["outside aten operators (autograd engine, Python)"]["share"] < 0.3  # the operators hold the time
    # a convolutional autoencoder spends most of its step in convolutions, which hold all but a sliver of its FLOPs
    convolutions = groups["convolution forward"]["share"] + groups["convolution backward"]["share"]
    assert convolutions > 0.4
    assert groups["convolution backward"]["gflop_per_step"] == pytest.approx(
        2 * groups["convolution forward"]["gflop_per_step"], rel=0.05)
    assert groups["optimiser"]["ms_per_step"] > 0 and result["peak_gflops"] > 0
