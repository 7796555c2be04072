"""Benchmarks: `make bench` (python -m bench) runs them and records figures in bench/RESULTS.md."""
