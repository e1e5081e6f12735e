"""Speed and memory benchmarks, reported as ratios measured side by side in one run (``probe bench``)."""
