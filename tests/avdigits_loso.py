"""`benchmarks/loso.py` for the acceptance tests, whose manifest and folder helpers they share,
so that the figures there are the ones loso.py reports for the held-out speaker."""

from __future__ import annotations

from benchmark_scripts import load_benchmark

HELD_OUT = "nicolas"
SPEAKERS = {"george", "jackson", "lucas", "nicolas"}

loso = load_benchmark("loso")
