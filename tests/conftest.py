from pathlib import Path

import numpy as np
import pytest
import torch

from acai.nets import Arch

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "lines_public.npz"
TINY = Arch(scales=2, depth=4, latent=4, colors=1)  # d_z 64, fast enough for hundreds of steps


@pytest.fixture(scope="session")
def reference():
    if not REFERENCE.exists():
        pytest.skip(f"reference vectors not found at {REFERENCE}")
    return dict(np.load(REFERENCE))


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
