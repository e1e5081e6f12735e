"""``metrics.json``: build it from :class:`RunResults`, describe it (:data:`SCHEMA`), validate it.

Schema notation: a dict is an object with exactly these keys (``"*"``: any key, e.g. a
method name), a one-element list is an array of that element, and a string names a type:
``number``, ``integer``, ``string``, ``boolean``, with a trailing ``?`` meaning "or null";
``{"?": X}`` is X or null.
Numbers are always finite (no NaN/Infinity); ``null`` marks a figure that needs labels or
masks that are absent, or a test that was not run. A figure is an estimate
``{"value", "low", "high"}``: its value with a 95 % bootstrap interval (docs/EVALUATION.md).
"""

from __future__ import annotations

import math
from typing import Any

from probe import __version__
from probe.errors import ProbeValueError
from probe.evaluation.intervals import LEVEL, RESAMPLES, Estimate
from probe.evaluation.localization import POINTING_TOLERANCE
from probe.evaluation.verdict import FAITHFULNESS_REMOVAL, Check, Comparison, Verdict

from .results import BackboneResults, BackboneVerdicts, MethodResults, PseudoClass, RunResults

#: 2: ``timings`` moved out to timings.json, so that a run's metrics.json depends only on its inputs and seed.
#: 3: every figure is an estimate ``{"value", "low", "high"}`` (95 % bootstrap interval); verdict tests have
#: three outcomes with the comparisons behind them; role "positive control"; ``protocol`` records the settings;
#: the primary method is per backbone (``backbones[].method``; a run may hold CNNs and ViTs), not top-level.
SCHEMA_VERSION = 3

#: A figure with its 95 % interval (``low``/``high`` null when too few values allowed one).
_ESTIMATE = {"value": "number", "low": "number?", "high": "number?"}
_FIGURE = {"?": _ESTIMATE}
_CURVE = {"fractions": ["number"], "positive": [_FIGURE], "negative": [_FIGURE]}
_METHOD = {
    "positive_perturbation_auc": _FIGURE,
    "negative_perturbation_auc": _FIGURE,
    "faithfulness_gap": _FIGURE,
    "pointing_game": _FIGURE,
    "mask_energy": _FIGURE,
    "miou": _FIGURE,
    "pixel_accuracy": _FIGURE,
    "average_precision": _FIGURE,
    "undefined": {"*": "integer"},
    "perturbation_curves": {"?": _CURVE},
    "sanity": {"?": {"steps": ["string"], "similarity": [_FIGURE]}},
    "specificity": {
        "?": {
            "pointing_explained": _FIGURE,
            "pointing_other": _FIGURE,
            "pearson": _FIGURE,
            "spearman": _FIGURE,
            "images": "integer",
        }
    },
}
_COMPARISON = {
    "figure": "string",
    "value": _ESTIMATE,
    "baseline": "string",
    "baseline_value": _ESTIMATE,
    "difference": _FIGURE,
    "margin": "number",
    "outcome": "string",
}
_CHECK = {
    "?": {
        "outcome": "string?",
        "counted": "boolean",
        "comparisons": [_COMPARISON],
        "left_out": [_COMPARISON],
        "note": "string",
    }
}
_EVIDENCE = {"agreement": _CHECK, "localisation": _CHECK, "faithfulness": _CHECK}
_PSEUDO_CLASS = {
    "id": "integer",
    "size": "integer",
    "majority_label": "string?",
    "purity": _FIGURE,
    "semantic": "boolean?",
    "outcome": "string",
    "evidence": _EVIDENCE,
    "verdict": "string",
    "pointing_game": _FIGURE,
    "mask_energy": _FIGURE,
    "centre_pointing_game": _FIGURE,
    "mask_fraction": _FIGURE,
    "positive_perturbation_auc": _FIGURE,
    "negative_perturbation_auc": _FIGURE,
    "faithfulness_gap": _FIGURE,
}

#: The structure of metrics.json (see the module docstring for the notation).
SCHEMA: dict = {
    "schema_version": "integer",
    "tool": {"name": "string", "version": "string"},
    "protocol": {
        "interval_level": "number",
        "resamples": "integer",
        "perturbation_removal": "string",
        "pointing_tolerance_px": "number",
    },
    "dataset": {"name": "string", "images": "integer", "skipped": [{"path": "string", "reason": "string"}]},
    "backbones": [
        {
            "name": "string",
            "role": "string",
            "format": "string?",
            "arch": "string?",
            "control": "string?",
            "method": "string",
            "clustering": {"k": "integer", "nmi": _FIGURE, "ari": _FIGURE, "accuracy": _FIGURE, "purity": _FIGURE},
            "attribution": {"*": _METHOD},
            "baselines": {"centre_pointing_game": _FIGURE, "mask_fraction": _FIGURE},
            "semantic": "boolean?",
            "outcome": "string",
            "evidence": _EVIDENCE,
            "verdict": "string",
            "pseudo_classes": [_PSEUDO_CLASS],
        }
    ],
}


def _finite(value: float | None) -> float | None:
    """A finite float or None (NaN and infinities become None: they mean "undefined")."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _figure(e: Estimate | None) -> dict | None:
    """``{"value", "low", "high"}`` of an estimate; None when it or its value is undefined."""
    if e is None or _finite(e.value) is None:
        return None
    return {"value": float(e.value), "low": _finite(e.low), "high": _finite(e.high)}


def _curves(m: MethodResults) -> dict | None:
    base = m.positive_curve or m.negative_curve
    if base is None:
        return None
    return {
        "fractions": [float(x) for x in base.x],
        "positive": [_figure(y) for y in m.positive_curve.y] if m.positive_curve else [None] * len(base.x),
        "negative": [_figure(y) for y in m.negative_curve.y] if m.negative_curve else [None] * len(base.x),
    }


def _method(m: MethodResults) -> dict:
    return {
        "positive_perturbation_auc": _figure(m.positive_perturbation_auc),
        "negative_perturbation_auc": _figure(m.negative_perturbation_auc),
        "faithfulness_gap": _figure(m.faithfulness_gap),
        "pointing_game": _figure(m.pointing_game),
        "mask_energy": _figure(m.mask_energy),
        "miou": _figure(m.miou),
        "pixel_accuracy": _figure(m.pixel_accuracy),
        "average_precision": _figure(m.average_precision),
        "undefined": {key: int(count) for key, count in m.undefined.items()},
        "perturbation_curves": _curves(m),
        "sanity": None
        if m.sanity is None
        else {"steps": list(m.sanity.steps), "similarity": [_figure(v) for v in m.sanity.similarity]},
        "specificity": None
        if m.specificity is None
        else {
            "pointing_explained": _figure(m.specificity.pointing_explained),
            "pointing_other": _figure(m.specificity.pointing_other),
            "pearson": _figure(m.specificity.pearson),
            "spearman": _figure(m.specificity.spearman),
            "images": int(m.specificity.images),
        },
    }


def _comparison(c: Comparison) -> dict:
    return {
        "figure": c.figure,
        "value": _figure(c.value),
        "baseline": c.baseline,
        "baseline_value": _figure(c.baseline_value),
        "difference": _figure(c.difference),
        "margin": float(c.margin),
        "outcome": c.outcome,
    }


def _test(check: Check | None, counted: bool) -> dict | None:
    if check is None:
        return None
    return {
        "outcome": check.outcome,
        "counted": counted,
        "comparisons": [_comparison(c) for c in check.comparisons],
        "left_out": [_comparison(c) for c in check.left_out],
        "note": check.note,
    }


def verdict_json(v: Verdict) -> dict:
    """The verdict keys of a backbone or pseudo-class: ``semantic``, ``outcome``, ``evidence``, ``verdict``."""
    counted = {"localisation": v.objects_counted}
    return {
        "semantic": v.semantic,
        "outcome": v.outcome,
        "evidence": {key: _test(v.check(key), counted.get(key, True)) for key in _EVIDENCE},
        "verdict": v.statement,
    }


def _pseudo_class(pc: PseudoClass, v: Verdict) -> dict:
    return {
        "id": int(pc.id),
        "size": int(pc.size),
        "majority_label": pc.majority_label,
        "purity": _figure(pc.purity),
        **verdict_json(v),
        "pointing_game": _figure(pc.pointing_game),
        "mask_energy": _figure(pc.mask_energy),
        "centre_pointing_game": _figure(pc.centre_pointing_game),
        "mask_fraction": _figure(pc.mask_fraction),
        "positive_perturbation_auc": _figure(pc.positive_perturbation_auc),
        "negative_perturbation_auc": _figure(pc.negative_perturbation_auc),
        "faithfulness_gap": _figure(pc.faithfulness_gap),
    }


def _backbone(b: BackboneResults, verdicts: BackboneVerdicts) -> dict:
    return {
        "name": b.name,
        "role": b.role,
        "format": b.format,
        "arch": b.arch,
        "control": b.control,
        "method": b.method,
        "clustering": {
            "k": int(b.clustering.k),
            "nmi": _figure(b.clustering.nmi),
            "ari": _figure(b.clustering.ari),
            "accuracy": _figure(b.clustering.accuracy),
            "purity": _figure(b.clustering.purity),
        },
        "attribution": {name: _method(m) for name, m in b.methods.items()},
        "baselines": {
            "centre_pointing_game": _figure(b.centre_pointing_game),
            "mask_fraction": _figure(b.mask_fraction),
        },
        **verdict_json(verdicts.backbone),
        "pseudo_classes": [_pseudo_class(pc, pv) for pc, pv in zip(b.pseudo_classes, verdicts.pseudo_classes)],
    }


def build_metrics(results: RunResults) -> dict:
    """The metrics.json object of ``results`` (validated against :data:`SCHEMA`)."""
    obj = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "ssl-probe", "version": __version__},
        "protocol": {
            "interval_level": LEVEL,
            "resamples": RESAMPLES,
            "perturbation_removal": FAITHFULNESS_REMOVAL,
            "pointing_tolerance_px": float(POINTING_TOLERANCE),
        },
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
            raise ProbeValueError(
                f"metrics.json {where or 'top level'}: missing keys {missing}, unexpected keys {extra}"
            )
        for key, sub in schema.items():
            _check(value[key], sub, f"{where}.{key}" if where else key)


def validate_metrics(obj: Any) -> None:
    """Raise :class:`ProbeValueError` naming the first place where ``obj`` does not follow :data:`SCHEMA`."""
    _check(obj, SCHEMA, "")
