"""Benchmarks (`make bench`); results in bench/README.md."""
