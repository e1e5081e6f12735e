"""Train, measure and probe the known-answer backbones that check the semantic-evidence verdict.

    PYTHONPATH=. python scripts/build_known_answer.py train   [--kinds K ...] [--seeds 1 2 3 4 5] [--out DIR]
    PYTHONPATH=. python scripts/build_known_answer.py probe   [--kinds K ...] [--seeds ...] [--out DIR]
    PYTHONPATH=. python scripts/build_known_answer.py collect [--out DIR] [--data tests/data/known_answer_verdicts.json]

Four kinds of ``resnet_small`` backbones whose answer is known in advance, each with several training
seeds, all trained by the project's own pretraining code on the built-in world (docs/EVALUATION.md,
"Known-answer backbones"):

- ``supervised`` (positive): cross-entropy on the categories, the demo's recipe, shorter;
- ``random_init`` (negative): ``backbones.random_like`` with the seed, no training;
- ``byol_collapsed`` (negative): the demo's BYOL recipe, which collapses, shorter;
- ``background_shortcut`` (negative): cross-entropy on the background's pattern kind only.

``train`` writes ``DIR/<kind>_seed<S>.pth`` and records each file (command, seed, steps, wall time,
sha256, held-out NMI against the categories and against the background kind) in ``DIR/MANIFEST.json``;
a file already recorded with the same sha256 is skipped, so an interrupted build resumes. ``probe``
runs the demo's probe (its world, masks, seed and random-init control; settings in ``PROBE_OPTIONS``) on
each backbone on its own into ``DIR/runs/<kind>_seed<S>/`` (resumable). ``collect`` keeps, per probed
backbone, its kind, seed, expected answer and each test's comparisons in one small JSON file, which
``tests/evaluation/test_known_answer.py`` judges again with the verdict rule, and prints the
false-positive and false-negative counts as the Markdown table of docs/EVALUATION.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import backbones  # noqa: E402
from probe.demo.checkpoints import sha256  # noqa: E402
from probe.demo.measure import EVAL_SEED, EvalSet, cluster_nmi, evaluate, extract, probe_accuracy  # noqa: E402
from probe.demo.pretrain import OBJECT_SCALE_VIEWS, Recipe, pretrain, recipe  # noqa: E402
from probe.demo.world import BACKGROUNDS, WorldConfig, render_arrays  # noqa: E402
from probe.fileio import atomic_path, atomic_write_json, atomic_write_text  # noqa: E402

SEEDS = (1, 2, 3, 4, 5)  # training seeds; the demo's checkpoints and its control use seed 0
EVAL_IMAGES = 2000


@dataclass(frozen=True)
class Kind:
    """One kind of known-answer backbone: its expected verdict and how it is made (no recipe: random init)."""

    positive: bool
    recipe: Recipe | None
    about: str


KINDS: dict[str, Kind] = {
    "supervised": Kind(
        True, recipe("supervised", steps=400), "cross-entropy on the categories (the demo's recipe, 400 steps)"
    ),
    "random_init": Kind(False, None, "backbones.random_like(resnet_small, seed), untrained"),
    "byol_collapsed": Kind(False, recipe("byol", steps=300), "the demo's BYOL recipe, 300 steps: collapses"),
    "background_shortcut": Kind(
        False,
        Recipe("background", steps=400, batch_size=128, augment=OBJECT_SCALE_VIEWS),
        "cross-entropy on the background's pattern kind only (400 steps)",
    ),
}


def _template() -> backbones.Backbone:
    """A ``resnet_small`` backbone in the plain layout (the architecture every kind shares)."""
    return backbones.Backbone(
        backbones.create("resnet_small"),
        arch="resnet_small",
        format="plain",
        source=backbones.Source(None, None, "template"),
        feature_dim=128,
        preprocessing=backbones.Preprocessing(64, backbones.RAW),
    )


def measure(path: Path, cfg: WorldConfig, cache: Path) -> dict[str, float]:
    """Held-out measurements of a checkpoint file: NMI/probe on the categories, and on the background kind."""
    loaded = backbones.load(path)
    normalize = loaded.mean is not None
    data = EvalSet.build(cfg, EVAL_IMAGES, cache_dir=cache)
    kinds = render_arrays(cfg, EVAL_IMAGES, EVAL_SEED, cache_dir=cache)["backgrounds"]
    feats = extract(loaded, data.images, normalize)
    return {
        **evaluate(loaded, normalize, data, "cpu", seed=0),
        "background_nmi": round(cluster_nmi(feats, kinds, len(BACKGROUNDS)), 4),
        "background_probe_acc": round(probe_accuracy(feats, kinds), 4),
    }


def build_one(name: str, kind: Kind, seed: int, out: Path) -> dict:
    """Train (or draw) one backbone into ``out/<name>_seed<seed>.pth``; its manifest entry."""
    path = out / f"{name}_seed{seed}.pth"
    started = time.perf_counter()
    history, steps = None, 0
    if kind.recipe is None:
        model = backbones.random_like(_template(), seed).model
        with atomic_path(path) as tmp:
            torch.save(model.state_dict(), tmp)
    else:
        summary = pretrain(kind.recipe, path, seed=seed, device="cpu", progress=False, cache_dir=out / "cache")
        history, steps = summary["history"], summary["steps"]
    wall = round(time.perf_counter() - started, 1)
    cfg = kind.recipe.world if kind.recipe else WorldConfig()
    return {
        "kind": name,
        "expected": "semantic" if kind.positive else "not semantic",
        "about": kind.about,
        "command": f"PYTHONPATH=. python scripts/build_known_answer.py train --kinds {name} --seeds {seed} --threads 1",
        "seed": seed,
        "steps": steps,
        "wall_s": wall,
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "device": "cpu",
        },
        "file": path.name,
        "bytes": path.stat().st_size,
        "sha256": sha256(path),
        "metrics": measure(path, cfg, out / "cache"),
        "history": history,
        "recipe": kind.recipe.to_json() if kind.recipe else None,
    }


def read_manifest(out: Path) -> dict:
    path = out / "MANIFEST.json"
    if path.exists():
        return json.loads(path.read_text())
    return {"about": "known-answer backbones of the verdict check, trained on the built-in world", "files": {}}


def train(kinds: list[str], seeds: list[int], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out)
    for name in kinds:
        for seed in seeds:
            file = f"{name}_seed{seed}.pth"
            entry = manifest["files"].get(file)
            if entry and (out / file).exists() and sha256(out / file) == entry["sha256"]:
                continue
            manifest["files"][file] = build_one(name, KINDS[name], seed, out)
            atomic_write_json(out / "MANIFEST.json", manifest)
            m = manifest["files"][file]
            print(
                f"{file}: {m['steps']} steps, {m['wall_s']} s, NMI {m['metrics']['nmi']:.3f}, "
                f"background NMI {m['metrics']['background_nmi']:.3f}",
                flush=True,
            )


#: The documented probe settings of the check: the demo's (12 evaluated images per pseudo-class, seed 0, the
#: demo's world and its random-init control), with Grad-CAM as the only baseline and no sanity or specificity
#: test (the verdict uses neither).
PROBE_OPTIONS = {"eval_per_class": 12, "baselines": ("gradcam",), "sanity_images": 0, "specificity_images": 0}
#: The verdict's tests, as metrics.json records them per backbone.
TESTS = ("agreement", "localisation", "faithfulness")


def probe(kinds: list[str], seeds: list[int], out: Path) -> None:
    """Probe each chosen backbone on its own (with the control) into ``out/runs/<kind>_seed<S>/``; a backbone
    whose ``metrics.json`` is already there is skipped, so an interrupted probe resumes."""
    from probe.demo.runner import DEMO_IMAGES, build_world, probe_world

    files = read_manifest(out)["files"]
    images, masks = build_world(out / "world", images=DEMO_IMAGES, seed=0)
    chosen = sorted(
        (e["kind"], e["seed"], f)
        for f, e in files.items()
        if e["kind"] in kinds and e["seed"] in seeds and (out / f).is_file()
    )
    for name, seed, file in chosen:
        run = out / "runs" / f"{name}_seed{seed}"
        if (run / "metrics.json").is_file():
            continue
        started = time.perf_counter()
        probe_world(images, masks, [(f"{name}_seed{seed}", out / file)], out=run, device="cpu", seed=0, **PROBE_OPTIONS)
        print(f"{name}_seed{seed}: probed in {time.perf_counter() - started:.0f} s", flush=True)


def _compact(test: dict | None) -> dict | None:
    """A test as the verdict rule needs it again: its outcome and its comparisons."""
    if test is None:
        return None
    keep = ("figure", "baseline", "value", "baseline_value", "difference", "margin")
    return {
        "outcome": test["outcome"],
        "comparisons": [{k: c[k] for k in keep} for c in test["comparisons"]],
        "left_out": [{k: c[k] for k in keep} for c in test["left_out"]],
    }


def collect(out: Path) -> dict:
    """The verdict inputs of every known-answer backbone probed so far (kind, seed, expected answer, and
    each test's comparisons), for ``tests/data/known_answer_verdicts.json``."""
    files = read_manifest(out)["files"]
    rows, schema, protocol = [], None, None
    for entry in sorted(files.values(), key=lambda e: (list(KINDS).index(e["kind"]), e["seed"])):
        name = f"{entry['kind']}_seed{entry['seed']}"
        path = out / "runs" / name / "metrics.json"
        if not path.is_file():
            continue
        metrics = json.loads(path.read_text())
        schema, protocol = metrics["schema_version"], metrics["protocol"]
        (b,) = [b for b in metrics["backbones"] if b["name"] == name]
        rows.append(
            {
                "backbone": name,
                "kind": entry["kind"],
                "seed": entry["seed"],
                "sha256": entry["sha256"],
                "expected": entry["expected"],
                "semantic": b["semantic"],
                "outcome": b["outcome"],
                "tests": {key: _compact(b["evidence"][key]) for key in TESTS},
            }
        )
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in PROBE_OPTIONS.items()}
    return {
        "about": "inputs of the semantic-evidence verdict on the known-answer backbones "
        "(scripts/build_known_answer.py collect; docs/EVALUATION.md, 'Known-answer check')",
        "schema_version": schema,
        "settings": {"world": "the demo's (1,200 images, seed 0)", "seed": 0, **settings, "protocol": protocol},
        "backbones": rows,
    }


def one_backbone_a_line(data: dict) -> str:
    """``data`` as JSON with each backbone on one line: half the size of indented JSON, still diffable."""
    head = {k: v for k, v in data.items() if k != "backbones"}
    lines = [json.dumps(b, allow_nan=False) for b in data["backbones"]]
    return (
        json.dumps(head, indent=1, allow_nan=False)[:-2] + ',\n "backbones": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"
    )


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
    p.add_argument("stage", choices=("train", "probe", "collect"))
    p.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=list(KINDS))
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument("--out", default="/work/known", help="folder for checkpoints, MANIFEST.json and runs/")
    p.add_argument("--data", default="tests/data/known_answer_verdicts.json", help="where collect writes")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: byte-identical files on one torch build)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("PROBE_NO_PROGRESS", "1")
    out = Path(args.out)
    if args.stage == "train":
        train(args.kinds, args.seeds, out)
    elif args.stage == "probe":
        probe(args.kinds, args.seeds, out)
    else:
        data = collect(out)
        atomic_write_text(Path(args.data), one_backbone_a_line(data))
        print("| test | false positives (negatives passing) | false negatives (positives not passing) |")
        print("|---|---|---|")
        for key, c in rates(data).items():
            print(f"| {key} | {c['fp']} of {c['negatives']} | {c['fn']} of {c['positives']} |")


if __name__ == "__main__":
    main()
