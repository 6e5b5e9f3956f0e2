"""The scripts under benchmarks/ as modules, for the tests that call their helpers
(benchmarks/ holds scripts, not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py, executed as the module `crossmodal_bench_<name>`."""
    spec = importlib.util.spec_from_file_location(
        f"crossmodal_bench_{name}", BENCHMARKS / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
