"""The benchmark scripts' own measurements (the speed figures in the README come from them)."""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
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
    assert seconds_per_call(lambda: calls.append("bare"), 3) >= 0 and calls.count("bare") == 3
    with pytest.raises(ValueError):
        seconds_per_call(step, [(9,)], "cpu", warmup=1)


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
