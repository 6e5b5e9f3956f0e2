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


# `make test` hands whole files to its workers in collection order (pytest-xdist, --dist
# loadfile, no reordering), so the longest files go first and the short ones fill in at the end:
# a long file started last keeps one worker busy while the others are done. Seconds each took
# in one `make test` on a 2-core machine (both workers busy), longest first; the rest follow in
# their usual order.
LONGEST_FIRST = (
    "test_acceptance_transfer.py",
    "test_acceptance.py",
    "test_cli.py",
    "test_train_resume.py",
    "test_train_options.py",
    "test_train.py",
    "test_distributed.py",
    "test_interrupt.py",
    "test_sharded.py",
    "test_hostile.py",
    "test_remote_paths.py",
    "test_model.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole
