"""Speed and memory measurements of gradcon_tf (repo only, not installed).

``python -m benchmarks.run --out docs/results/benchmarks`` runs the whole suite;
``benchmarks/bench_litert.py`` is the LiteRT latency benchmark the suite calls into.
"""
