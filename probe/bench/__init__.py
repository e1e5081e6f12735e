"""Speed and memory benchmarks behind ``probe bench`` and ``scripts/bench_*.py``: each module has
``main(argv)`` and a ``--quick`` mode, and reports ratios measured side by side in one run."""
