"""ssl-probe: did a self-supervised backbone learn semantic concepts, and where does it look?

The public API is exported lazily (``probe.explain`` imports the attribution engine on
first use) so that ``import backbones`` and ``import unsupervised``, which use
:mod:`probe.errors`, never pull in the whole pipeline.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "explain": "probe.attribution",
    "METHODS": "probe.attribution",
    "normalize_map": "probe.attribution",
    "ProbeError": "probe.errors",
    "run_probe": "probe.pipeline",
    "write_report": "probe.report",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'probe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
