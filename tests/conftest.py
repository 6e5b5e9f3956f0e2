from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
AVDIGITS = SHARED / "avdigits"

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Importing `cli` installs its start-up Ctrl-C handler (one line, then exit 130), which the
# command's main() replaces with Python's. Tests import cli without main(): put Python's back,
# so that an interrupt of a test process (xdist stopping its workers) is not "interrupted".
import signal  # noqa: E402

import cli  # noqa: E402, F401

signal.signal(signal.SIGINT, signal.default_int_handler)


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
# a long file started last keeps one worker busy while the others are done. Longest first,
# roughly: the seconds each file took in one `make test` on a 2-core machine (session 29, both
# workers busy; about 4470 s of tests in 2260 s), in the order below: 1475, 590, 636, 644, 386,
# 164, 73, 154, 58, 150, 32, 64. The two acceptance files lead whatever their seconds: each is
# one long training that cannot be split. The rest, a few seconds each, follow in their usual
# order.
LONGEST_FIRST = (
    "test_acceptance_transfer.py",
    "test_acceptance.py",
    "test_train_resume.py",
    "test_cli.py",
    "test_train_options.py",
    "test_train.py",
    "test_sharded.py",
    "test_distributed.py",
    "test_hostile.py",
    "test_model.py",
    "test_remote_paths.py",
    "test_interrupt.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


# A test phase that takes over a minute is named, with the time, as it ends: when a CI run is
# stopped at its time limit, its log then says what ran long (and `--durations` never prints).
SLOW_PHASE_SECONDS = 60
_session_config: pytest.Config | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _session_config
    _session_config = config


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config = _session_config
    if report.duration < SLOW_PHASE_SECONDS or config is None or hasattr(config, "workerinput"):
        return  # on an xdist worker the controller reports it
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        stamp = time.strftime("%H:%M:%S")
        reporter.write(f"\n[{stamp}] {report.duration:.0f} s {report.when} {report.nodeid}\n")
