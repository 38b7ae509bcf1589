"""Shared fixtures: where the shared data lives, and a skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _find_shared_data() -> Path | None:
    env = os.environ.get("FASTLLM_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if (c / "README.md").is_file():
            return c
    return None


SHARED_DATA = _find_shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or $FASTLLM_SHARED_DATA); skips the test when absent."""
    if SHARED_DATA is None:
        pytest.skip(
            "shared data not found: expected ../shared/data beside the repository "
            "or FASTLLM_SHARED_DATA pointing at it"
        )
    return SHARED_DATA
