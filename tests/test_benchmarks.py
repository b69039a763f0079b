"""The benchmark scripts' own measurements (the speed figures in the README come from them)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

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
    assert parent_block[-1] == 1.0
    assert 180 <= rise <= 260, rise
