"""The experiments wing: seed sweeps and their reports, benchmarks, and the runner of the
original project's code. Nothing outside the scripts imports it."""
