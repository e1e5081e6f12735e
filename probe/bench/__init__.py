"""Benchmarks behind ``probe bench`` and ``scripts/bench_*.py``: each module has ``main(argv)`` and a ``--quick`` mode."""
