"""The main job: checkpoint + image folder -> pseudo-classes -> explanations -> evaluated report.

``run_probe`` runs it on one checkpoint (``probe run``); ``probe_backbones`` runs it on
already-loaded backbones sharing one dataset and one random-init control (``probe demo``);
``explain_image`` explains one image (``probe explain``); ``load_probe_model`` gives back a
run's pseudo-class model. Stage by stage: docs/PIPELINE.md.
"""

from .cli import explain_from_args, run_from_args
from .explain_image import ImageExplanation, explain_image
from .options import ProbeOptions, resolve_device
from .run import CONTROL_NAME, probe_backbones, run_probe, write_run_report
from .saved import load_probe_model, resolve_run_dir
from .stages import STAGES, StageClock
from .summary import summary_table

__all__ = [
    "CONTROL_NAME",
    "STAGES",
    "ImageExplanation",
    "ProbeOptions",
    "StageClock",
    "explain_from_args",
    "explain_image",
    "load_probe_model",
    "probe_backbones",
    "resolve_device",
    "resolve_run_dir",
    "run_from_args",
    "run_probe",
    "summary_table",
    "write_run_report",
]
