"""`benchmarks/loso.py` for the acceptance tests, whose manifest and folder helpers they share,
so that the figures there are the ones loso.py reports for the held-out speaker."""

from __future__ import annotations

import importlib.util
from pathlib import Path

HELD_OUT = "nicolas"
SPEAKERS = {"george", "jackson", "lucas", "nicolas"}


def _load_loso():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "loso.py"
    spec = importlib.util.spec_from_file_location("crossmodal_bench_loso", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


loso = _load_loso()
