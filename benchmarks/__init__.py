"""Benchmarks run by `make bench` (python -m benchmarks); each prints ratios measured in one run."""
