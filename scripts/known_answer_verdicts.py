"""Probe the known-answer backbones with the current verdict rule and keep the verdicts' inputs.

    PYTHONPATH=. python scripts/known_answer_verdicts.py probe   [--known /work/known] [--out DIR] [--kinds K ...]
    PYTHONPATH=. python scripts/known_answer_verdicts.py collect [--known /work/known] [--out DIR] \\
        [--data tests/data/known_answer_verdicts.json]

``probe`` runs the demo's probe (its world, 12 evaluated images per pseudo-class, seed 0) on every
seed of each kind of ``scripts/build_known_answer.py``'s manifest, against the demo's random-init
control, with Grad-CAM as the only baseline and no sanity or specificity test (the verdict uses
neither): ``DIR/runs/<kind>/metrics.json``. ``collect`` keeps, per probed backbone, its kind, seed,
expected answer and each test's comparisons (figure, baseline, their estimates, the difference's
interval, the minimum effect) in one small JSON file, which ``tests/evaluation/test_known_answer.py``
judges again with the verdict rule and counts into the false-positive and false-negative rates of
docs/EVALUATION.md. It prints those rates as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.fileio import atomic_write_json  # noqa: E402

KINDS = ("supervised", "random_init", "byol_collapsed", "background_shortcut")
POSITIVE = {"supervised"}
OPTIONS = {"eval_per_class": 12, "baselines": ("gradcam",), "sanity_images": 0, "specificity_images": 0}
TESTS = ("agreement", "localisation", "faithfulness")


def _manifest(known: Path) -> dict:
    return json.loads((known / "MANIFEST.json").read_text())["files"]


def probe(known: Path, out: Path, kinds: list[str]) -> None:
    from probe.demo.runner import DEMO_IMAGES, build_world, probe_world

    files = _manifest(known)
    images, masks = build_world(out / "world", images=DEMO_IMAGES, seed=0)
    for kind in kinds:
        chosen = sorted((e["seed"], f) for f, e in files.items() if e["kind"] == kind and (known / f).is_file())
        if not chosen:
            print(f"{kind}: no checkpoint in {known}", flush=True)
            continue
        started = time.perf_counter()
        probe_world(images, masks, [(f"{kind}_seed{seed}", known / f) for seed, f in chosen],
                    out=out / "runs" / kind, device="cpu", seed=0, **OPTIONS)
        print(f"{kind}: {len(chosen)} backbones probed in {time.perf_counter() - started:.0f} s", flush=True)


def _compact(test: dict | None) -> dict | None:
    if test is None:
        return None
    keep = ("figure", "baseline", "value", "baseline_value", "difference", "margin")
    return {"outcome": test["outcome"],
            "comparisons": [{k: c[k] for k in keep} for c in test["comparisons"]],
            "left_out": [{k: c[k] for k in keep} for c in test["left_out"]]}


def collect(known: Path, out: Path) -> dict:
    """The verdict inputs of every known-answer backbone probed so far."""
    files = _manifest(known)
    seeds = {f"{e['kind']}_seed{e['seed']}": e for e in files.values()}
    rows = []
    for kind in KINDS:
        path = out / "runs" / kind / "metrics.json"
        if not path.is_file():
            continue
        metrics = json.loads(path.read_text())
        for b in metrics["backbones"]:
            if b["role"] == "control":
                continue
            entry = seeds[b["name"]]
            rows.append({"backbone": b["name"], "kind": kind, "seed": entry["seed"], "sha256": entry["sha256"],
                         "expected": "semantic" if kind in POSITIVE else "not semantic",
                         "semantic": b["semantic"], "outcome": b["outcome"],
                         "tests": {key: _compact(b["evidence"][key]) for key in TESTS}})
    return {"about": "inputs of the semantic-evidence verdict on the known-answer backbones "
                     "(scripts/known_answer_verdicts.py; docs/EVALUATION.md, 'Known-answer check')",
            "schema_version": metrics["schema_version"] if rows else None,
            "settings": {"world": "the demo's (1,200 images, seed 0)", "seed": 0, **{k: list(v) if isinstance(v, tuple)
                                                                                   else v for k, v in OPTIONS.items()}},
            "backbones": rows}


def rates(data: dict) -> dict[str, dict[str, int]]:
    """Per test and for the verdict: false positives among negatives, false negatives among positives."""
    counts = {key: {"fp": 0, "fn": 0, "negatives": 0, "positives": 0} for key in (*TESTS, "verdict")}
    for b in data["backbones"]:
        positive = b["expected"] == "semantic"
        outcomes = {key: (b["tests"][key] or {}).get("outcome") for key in TESTS}
        outcomes["verdict"] = "passes" if b["semantic"] is True else "fails"
        for key, outcome in outcomes.items():
            c = counts[key]
            c["positives" if positive else "negatives"] += 1
            c["fn"] += positive and outcome != "passes"
            c["fp"] += (not positive) and outcome == "passes"
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=("probe", "collect"))
    p.add_argument("--known", default="/work/known", help="folder with the checkpoints and MANIFEST.json")
    p.add_argument("--out", default="known-verdicts", help="folder for the world and the runs")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--data", default="tests/data/known_answer_verdicts.json", help="where collect writes")
    args = p.parse_args()
    os.environ.setdefault("PROBE_NO_PROGRESS", "1")
    if args.stage == "probe":
        probe(Path(args.known), Path(args.out), args.kinds)
        return
    data = collect(Path(args.known), Path(args.out))
    atomic_write_json(Path(args.data), data)
    print("| test | false positives (negatives passing) | false negatives (positives not passing) |")
    print("|---|---|---|")
    for key, c in rates(data).items():
        print(f"| {key} | {c['fp']} of {c['negatives']} | {c['fn']} of {c['positives']} |")


if __name__ == "__main__":
    main()
