"""Speed must not change what the report says: one case run on the slow path and on the fast defaults,
verdicts and figures side by side.

The slow path evaluates every image of the evaluation subset (up to 16 per pseudo-class, 160 for
k = 10) with all 9 perturbation steps (``eval_precision=0``); the fast path is ``probe run``'s
defaults (rounds of 32 images until the primary method's faithfulness gap is known within ±0.1).
``--slow-code DIR`` runs the slow path with another checkout's code instead (it must write schema 3
``metrics.json``). Each run is a child process; the comparison reads the two ``metrics.json`` files.

A figure *agrees* when the slow path's value lies inside the fast path's 95 % interval, the
uncertainty the fast report states. Verdicts compared: each backbone's outcome, the outcomes of its
three tests, and every pseudo-class's outcome. Cases: ``digits`` (:mod:`probe.bench.digits`) and
``demo`` (the synthetic world with the shipped checkpoints, ``probe demo``'s options).
Run: ``probe bench fidelity [--case digits|demo] [--slow-code DIR] [--work DIR] [--markdown FILE]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Backbone-level figures of each method, and the per-pseudo-class figures of the primary method.
METHOD_FIGURES = (
    "pointing_game",
    "mask_energy",
    "positive_perturbation_auc",
    "negative_perturbation_auc",
    "faithfulness_gap",
)
CLASS_FIGURES = METHOD_FIGURES
TESTS = ("agreement", "localisation", "faithfulness")

_CHILD = """
import json, sys
args = json.loads(sys.argv[1])
options = args["options"]
if args["case"] == "demo":
    from probe.demo.runner import run_demo
    run_demo(args["out"], **options)
else:
    from probe.pipeline.run import run_probe
    run_probe(args["weights"], data=args["images"], masks=args["masks"], k=10, out=args["out"], **options)
"""


def _run(case: dict, out: Path, code: Path, options: dict) -> dict:
    """One run in a child process on ``code``; returns its metrics, stage timings and wall time."""
    shutil.rmtree(out, ignore_errors=True)  # a kept --work folder: never resume an earlier run
    path = os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "PYTHONPATH": path, "PROBE_NO_PROGRESS": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps({**case, "out": str(out), "options": options})],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {case['case']} run on {code} failed:\n{done.stderr[-3000:]}")
    return {
        "metrics": json.loads((out / "metrics.json").read_text()),
        "timings": json.loads((out / "timings.json").read_text())["seconds"],
        "wall_s": time.perf_counter() - start,
    }


def _agrees(slow: dict | None, fast: dict | None) -> bool | None:
    """Whether the slow value lies in the fast interval (None: a figure or interval missing)."""
    if slow is None or fast is None or fast.get("low") is None or fast.get("high") is None:
        return None
    return fast["low"] - 1e-9 <= slow["value"] <= fast["high"] + 1e-9


def verdicts(metrics: dict) -> dict[str, dict]:
    """Per backbone: its outcome, its three tests' outcomes and its pseudo-classes' outcomes."""
    out = {}
    for b in metrics["backbones"]:
        tests = {t: (b["evidence"].get(t) or {}).get("outcome") for t in TESTS}
        out[b["name"]] = {"outcome": b["outcome"], **tests, "classes": [pc["outcome"] for pc in b["pseudo_classes"]]}
    return out


def compare(slow: dict, fast: dict) -> dict:
    """Verdicts, backbone figures of every method both runs have, and the primary method's per-pseudo-class
    figures of the two runs' metrics.json."""
    rows: list[dict] = []
    agree, total = 0, 0
    outside: list[dict] = []
    slow_by_name = {b["name"]: b for b in slow["backbones"]}
    for f_b in fast["backbones"]:
        s_b = slow_by_name[f_b["name"]]
        for method, f_m in f_b["attribution"].items():
            s_m = s_b["attribution"].get(method)
            if s_m is None:
                continue
            for figure in METHOD_FIGURES:
                s, f = s_m.get(figure), f_m.get(figure)
                if s is None and f is None:
                    continue
                rows.append(
                    {
                        "backbone": f_b["name"],
                        "method": method,
                        "figure": figure,
                        "slow": s,
                        "fast": f,
                        "agrees": _agrees(s, f),
                    }
                )
        for s_pc, f_pc in zip(s_b["pseudo_classes"], f_b["pseudo_classes"]):
            for figure in CLASS_FIGURES:
                agrees = _agrees(s_pc.get(figure), f_pc.get(figure))
                if agrees is None:
                    continue
                total += 1
                agree += int(agrees)
                if not agrees:
                    outside.append(
                        {
                            "backbone": f_b["name"],
                            "class": f_pc["id"],
                            "figure": figure,
                            "slow": s_pc[figure],
                            "fast": f_pc[figure],
                        }
                    )
    slow_v, fast_v = verdicts(slow), verdicts(fast)
    per_class = {"agree": agree, "total": total, "outside": outside}
    return {
        "rows": rows,
        "per_class": per_class,
        "verdicts": {"slow": slow_v, "fast": fast_v},
        "same_verdicts": slow_v == fast_v,
    }


def _fmt(e: dict | None) -> str:
    if e is None:
        return "–"
    if e.get("low") is None:
        return f"{e['value']:.3f}"
    return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def markdown(case: str, result: dict, slow: dict, fast: dict) -> str:
    """The comparison as a Markdown section (tables for docs/BENCHMARKS.md)."""
    lines = [f"#### Case {case}", ""]
    for label, run in (("slow", slow), ("fast", fast)):
        t = run["timings"]
        extract = t.get("extract", 0.0)
        lines.append(
            f"- {label} path: {run['wall_s']:.0f} s in all; extract {extract:.0f} s, "
            f"explain {t.get('explain', 0):.0f} s, evaluate {t.get('evaluate', 0):.0f} s"
            + (f"; run / extract {run['wall_s'] / extract:.1f}x" if extract else "")
        )
    same = "the same" if result["same_verdicts"] else "**different**"
    lines += [
        "",
        f"Verdicts (each backbone, its three tests, every pseudo-class): {same}.",
        "",
        "| backbone | slow: outcome / agreement / localisation / faithfulness | fast |",
        "|---|---|---|",
    ]
    for name, v in result["verdicts"]["slow"].items():
        w = result["verdicts"]["fast"][name]
        keys = ("outcome", *TESTS)
        lines.append(f"| {name} | {' / '.join(str(v[k]) for k in keys)} | {' / '.join(str(w[k]) for k in keys)} |")
    lines += [
        "",
        "| backbone | method | figure | slow path | fast path, 95% interval | slow inside fast |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        mark = {True: "yes", False: "**no**", None: "–"}[r["agrees"]]
        lines.append(
            f"| {r['backbone']} | {r['method']} | {r['figure']} | {_fmt(r['slow'])} | {_fmt(r['fast'])} | {mark} |"
        )
    pc = result["per_class"]
    lines += [
        "",
        f"Per-pseudo-class figures of the primary method: {pc['agree']} of {pc['total']} have the slow "
        "path's value inside the fast path's interval.",
    ]
    for o in pc["outside"]:
        lines.append(
            f"- outside: {o['backbone']}, pseudo-class {o['class']}, {o['figure']}: slow {_fmt(o['slow'])}, "
            f"fast {_fmt(o['fast'])}"
        )
    return "\n".join(lines) + "\n"


def _case(case: str, folder: Path, quick: bool) -> dict:
    """The child's description of ``case``, its files written to ``folder`` unless there."""
    if case == "demo":
        return {"case": "demo"}
    if case != "digits":
        raise ValueError(f"unknown case {case!r}; valid: digits, demo")
    from .digits import PER_CLASS, moco_v2_resnet18, write_digits

    data = folder / "digits"
    if not (data / "masks" / "9").is_dir():
        write_digits(data, per_class=8 if quick else PER_CLASS)
    weights = data / "moco_v2_resnet18.pth.tar"
    if not weights.is_file():
        moco_v2_resnet18(weights)
    return {"case": "digits", "weights": str(weights), "images": str(data / "images"), "masks": str(data / "masks")}


def run(
    *,
    case: str = "digits",
    slow_code: str | None = None,
    work: str | None = None,
    json_path: str | None = None,
    markdown_path: str | None = None,
    quick: bool = False,
) -> dict:
    """Run ``case`` on the slow path and on the fast defaults and print the comparison (Markdown)."""
    with tempfile.TemporaryDirectory(prefix="probe-bench-fidelity-") as scratch:
        folder = Path(work) if work else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        described = _case(case, folder, quick)
        slow_options = {} if slow_code else {"eval_precision": 0}
        slow = _run(described, folder / "slow", Path(slow_code) if slow_code else REPO, slow_options)
        fast = _run(described, folder / "fast", REPO, {})
    result = compare(slow["metrics"], fast["metrics"])
    text = markdown(case, result, slow, fast)
    print(text)
    if markdown_path:
        Path(markdown_path).write_text(text)
    if json_path:
        Path(json_path).write_text(
            json.dumps(
                {
                    "result": result,
                    "slow": {k: slow[k] for k in ("timings", "wall_s")},
                    "fast": {k: fast[k] for k in ("timings", "wall_s")},
                },
                indent=2,
            )
        )
    return result
