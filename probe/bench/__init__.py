"""Speed and memory benchmarks (docs/BENCHMARKS.md). Each module has ``run(quick=False, ...)``, which
prints ratios measured side by side in one run; ``probe bench NAME`` exposes its options."""
