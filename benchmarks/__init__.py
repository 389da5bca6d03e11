"""Benchmarks that print JSON (``python -m benchmarks.bench_serving``); speed targets live here, not in
the unit tests."""
