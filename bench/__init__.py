"""Benchmarks that measure the serving path end to end."""
