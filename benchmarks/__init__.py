"""`make bench`: every benchmarks/bench_*.py, each printing its figures as ratios."""
