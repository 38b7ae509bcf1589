"""One torch thread per test process: the tiny models gain nothing from more,
and results stay the same whatever OMP_NUM_THREADS the runner set."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
