"""Helpers shared by the tests, imported one way: ``from tests.support.<module> import ...``.

- ``cli``: run ``python -m probe`` in a child against this checkout (``probe_cli``, ``child_env``).
- ``shapes``: a tiny seeded shape world and resnet_small checkpoints in the shipped layouts;
  ``run_args`` for a cheap ``probe run`` on them.
- ``faults``: the fault battery's micro world with awkward files, hostile checkpoints, and
  ``probe`` children that count the feature rows they compute (``counting_run.py``).
- ``models``: tiny models whose effect on pixels is known, and honest explainers (metric tests).
- ``results``: synthetic ``RunResults`` with hostile strings in every name (report tests).
- ``demo``: tiny pretraining recipes (demo tests).
"""
