"""The main job: checkpoint + image folder -> pseudo-classes -> explanations -> evaluated report.

``run_probe`` runs it on one checkpoint (``probe run``); ``run_session`` and ``probe_backbones``
run it on already-loaded backbones sharing one dataset and one random-init control (``probe
demo``); ``explain_image`` explains one image (``probe explain``); ``load_probe_model`` gives back
a run's pseudo-class model. One module per stage (extract, cluster, head, explain, evaluate; the
report is written by the session). Stage by stage: docs/PIPELINE.md.

Names are exported lazily, so that reading :mod:`probe.pipeline.options` (the command line's
defaults) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module of this package that defines it
_EXPORTS = {
    "CONTROL_NAME": "compare",
    "probe_backbones": "compare",
    "ImageExplanation": "one_image",
    "explain_image": "one_image",
    "ProbeOptions": "options",
    "run_probe": "run",
    "SavedProbe": "saved",
    "load_probe_model": "saved",
    "resolve_run_dir": "saved",
    "RunSession": "session",
    "run_session": "session",
    "write_run_report": "session",
    "STAGES": "stages",
    "StageClock": "stages",
    "closing_summary": "summary",
    "summary_table": "summary",
    "judge_run": "verdicts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'probe.pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
