"""Tiny models and fakes built from configs, shared by the tests and the benchmarks (never real weights)."""
