"""Benchmarks of the warehouse: ingest throughput and slice-query latency.

Not tests: each benchmark writes a markdown table under `bench/results/`. See bench/README.md.
"""
