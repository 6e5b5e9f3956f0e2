from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
AVDIGITS = SHARED / "avdigits"

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Preprocessing caches go to a per-session temp folder, never to ~/.cache."""
    monkeypatch.setenv("CROSSMODAL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def avdigits() -> Path:
    if not AVDIGITS.is_dir():
        pytest.skip("../shared/datasets/avdigits is absent")
    return AVDIGITS
