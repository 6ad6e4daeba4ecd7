"""Benchmarks: scripts anyone can rerun; results are ratios against a baseline of the same run."""
