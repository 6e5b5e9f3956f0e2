"""Test package (so shared helpers import as `tests.synth`)."""
