"""``metrics.json``: build it from :class:`RunResults`, describe it (:data:`SCHEMA`), validate it.

Schema notation: a dict is an object with exactly these keys (``"*"``: any key, e.g. a
method name), a one-element list is an array of that element, and a string names a type:
``number``, ``integer``, ``string``, ``boolean``, with a trailing ``?`` meaning "or null";
``{"?": X}`` is X or null.
Numbers are always finite (no NaN/Infinity); ``null`` marks a figure that needs labels or
masks that are absent, or a test that was not run.
"""

from __future__ import annotations

import math
from typing import Any

from probe import __version__
from probe.errors import ProbeValueError

from .results import BackboneResults, BackboneVerdicts, Curve, MethodResults, RunResults

#: 2: ``timings`` moved out to timings.json, so that a run's metrics.json depends only on its inputs and seed.
#: 3: the primary method is per backbone (``backbones[].method``; a run may hold CNNs and ViTs), not top-level.
SCHEMA_VERSION = 3

_CURVE = {"fractions": ["number"], "positive": ["number?"], "negative": ["number?"]}
_METHOD = {
    "positive_perturbation_auc": "number?",
    "negative_perturbation_auc": "number?",
    "pointing_game": "number?",
    "mask_energy": "number?",
    "miou": "number?",
    "pixel_accuracy": "number?",
    "average_precision": "number?",
    "perturbation_curves": {"?": _CURVE},
    "sanity": {"?": {"steps": ["string"], "similarity": ["number?"]}},
    "specificity": {
        "?": {
            "pointing_explained": "number?",
            "pointing_other": "number?",
            "pearson": "number?",
            "spearman": "number?",
            "images": "integer",
        }
    },
}
_PSEUDO_CLASS = {
    "id": "integer",
    "size": "integer",
    "majority_label": "string?",
    "purity": "number?",
    "semantic": "boolean?",
    "verdict": "string",
    "pointing_game": "number?",
    "mask_energy": "number?",
    "centre_pointing_game": "number?",
    "mask_fraction": "number?",
    "positive_perturbation_auc": "number?",
    "negative_perturbation_auc": "number?",
}
_EVIDENCE = {"agreement": "boolean?", "localisation": "boolean?", "faithfulness": "boolean?"}

#: The structure of metrics.json (see the module docstring for the notation).
SCHEMA: dict = {
    "schema_version": "integer",
    "tool": {"name": "string", "version": "string"},
    "dataset": {"name": "string", "images": "integer", "skipped": [{"path": "string", "reason": "string"}]},
    "backbones": [
        {
            "name": "string",
            "role": "string",
            "format": "string?",
            "arch": "string?",
            "control": "string?",
            "method": "string",
            "clustering": {"k": "integer", "nmi": "number?", "ari": "number?", "accuracy": "number?", "purity": "number?"},
            "attribution": {"*": _METHOD},
            "baselines": {"centre_pointing_game": "number?", "mask_fraction": "number?"},
            "semantic": "boolean?",
            "evidence": _EVIDENCE,
            "verdict": "string",
            "pseudo_classes": [_PSEUDO_CLASS],
        }
    ],
}


def _number(value: float | None) -> float | None:
    """A finite float or None (NaN and infinities become None: they mean "undefined")."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _curves(m: MethodResults) -> dict | None:
    if m.positive_curve is None and m.negative_curve is None:
        return None
    base: Curve = m.positive_curve or m.negative_curve
    return {
        "fractions": [float(x) for x in base.x],
        "positive": [_number(y) for y in m.positive_curve.y] if m.positive_curve else [None] * len(base.x),
        "negative": [_number(y) for y in m.negative_curve.y] if m.negative_curve else [None] * len(base.x),
    }


def _method(m: MethodResults) -> dict:
    return {
        "positive_perturbation_auc": _number(m.positive_perturbation_auc),
        "negative_perturbation_auc": _number(m.negative_perturbation_auc),
        "pointing_game": _number(m.pointing_game),
        "mask_energy": _number(m.mask_energy),
        "miou": _number(m.miou),
        "pixel_accuracy": _number(m.pixel_accuracy),
        "average_precision": _number(m.average_precision),
        "perturbation_curves": _curves(m),
        "sanity": None
        if m.sanity is None
        else {"steps": list(m.sanity.steps), "similarity": [_number(v) for v in m.sanity.similarity]},
        "specificity": None
        if m.specificity is None
        else {
            "pointing_explained": _number(m.specificity.pointing_explained),
            "pointing_other": _number(m.specificity.pointing_other),
            "pearson": _number(m.specificity.pearson),
            "spearman": _number(m.specificity.spearman),
            "images": int(m.specificity.images),
        },
    }


def _backbone(b: BackboneResults, verdicts: BackboneVerdicts) -> dict:
    v = verdicts.backbone
    return {
        "name": b.name,
        "role": b.role,
        "format": b.format,
        "arch": b.arch,
        "control": b.control,
        "method": b.method,
        "clustering": {
            "k": int(b.clustering.k),
            "nmi": _number(b.clustering.nmi),
            "ari": _number(b.clustering.ari),
            "accuracy": _number(b.clustering.accuracy),
            "purity": _number(b.clustering.purity),
        },
        "attribution": {name: _method(m) for name, m in b.methods.items()},
        "baselines": {"centre_pointing_game": _number(b.centre_pointing_game), "mask_fraction": _number(b.mask_fraction)},
        "semantic": v.semantic,
        "evidence": {"agreement": v.agreement, "localisation": v.localisation, "faithfulness": v.faithfulness},
        "verdict": v.statement,
        "pseudo_classes": [
            {
                "id": int(pc.id),
                "size": int(pc.size),
                "majority_label": pc.majority_label,
                "purity": _number(pc.purity),
                "semantic": pv.semantic,
                "verdict": pv.statement,
                "pointing_game": _number(pc.pointing_game),
                "mask_energy": _number(pc.mask_energy),
                "centre_pointing_game": _number(pc.centre_pointing_game),
                "mask_fraction": _number(pc.mask_fraction),
                "positive_perturbation_auc": _number(pc.positive_perturbation_auc),
                "negative_perturbation_auc": _number(pc.negative_perturbation_auc),
            }
            for pc, pv in zip(b.pseudo_classes, verdicts.pseudo_classes)
        ],
    }


def build_metrics(results: RunResults) -> dict:
    """The metrics.json object of ``results`` (validated against :data:`SCHEMA`)."""
    obj = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "ssl-probe", "version": __version__},
        "dataset": {
            "name": results.dataset,
            "images": int(results.num_images),
            "skipped": [{"path": s.path, "reason": s.reason} for s in results.skipped],
        },
        "backbones": [_backbone(b, results.verdicts[b.name]) for b in results.backbones],
    }
    validate_metrics(obj)
    return obj


_SCALARS = {
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
}


def _check(value: Any, schema: Any, where: str) -> None:
    if isinstance(schema, str):
        kind, nullable = schema.rstrip("?"), schema.endswith("?")
        if value is None and nullable:
            return
        if not _SCALARS[kind](value):
            raise ProbeValueError(f"metrics.json {where}: expected {schema}, got {value!r}")
    elif isinstance(schema, list):
        if not isinstance(value, list):
            raise ProbeValueError(f"metrics.json {where}: expected an array, got {type(value).__name__}")
        for i, item in enumerate(value):
            _check(item, schema[0], f"{where}[{i}]")
    elif "?" in schema:
        if value is not None:
            _check(value, schema["?"], where)
    elif not isinstance(value, dict):
        raise ProbeValueError(f"metrics.json {where}: expected an object, got {type(value).__name__}")
    elif "*" in schema:
        for key, item in value.items():
            _check(item, schema["*"], f"{where}.{key}")
    else:
        missing = sorted(set(schema) - set(value))
        extra = sorted(set(value) - set(schema))
        if missing or extra:
            raise ProbeValueError(f"metrics.json {where or 'top level'}: missing keys {missing}, unexpected keys {extra}")
        for key, sub in schema.items():
            _check(value[key], sub, f"{where}.{key}" if where else key)


def validate_metrics(obj: Any) -> None:
    """Raise :class:`ProbeValueError` naming the first place where ``obj`` does not follow :data:`SCHEMA`."""
    _check(obj, SCHEMA, "")
