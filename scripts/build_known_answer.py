"""Train, measure and probe the known-answer backbones that check the semantic-evidence verdict.

    PYTHONPATH=. python scripts/build_known_answer.py train  [--kinds K ...] [--seeds 1 2 3 4 5] [--out DIR]
    PYTHONPATH=. python scripts/build_known_answer.py probe  [--kinds K ...] [--out DIR]
    PYTHONPATH=. python scripts/build_known_answer.py verdicts [--out DIR]

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
runs the demo's probe (its world, images, masks and settings) on each kind's seeds against the
demo's random-init control and keeps ``DIR/runs/<kind>/metrics.json``. ``verdicts`` counts, per test
of the verdict, how often today's rule passes a negative (false positive) or fails a positive
(false negative).
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
from probe.fileio import atomic_path, atomic_write_json  # noqa: E402

SEEDS = (1, 2, 3, 4, 5)  # training seeds; the demo's checkpoints and its control use seed 0
EVAL_IMAGES = 2000


@dataclass(frozen=True)
class Kind:
    """One kind of known-answer backbone: its expected verdict and how it is made (no recipe: random init)."""

    positive: bool
    recipe: Recipe | None
    about: str


KINDS: dict[str, Kind] = {
    "supervised": Kind(True, recipe("supervised", steps=400), "cross-entropy on the categories (the demo's recipe, 400 steps)"),
    "random_init": Kind(False, None, "backbones.random_like(resnet_small, seed), untrained"),
    "byol_collapsed": Kind(False, recipe("byol", steps=300), "the demo's BYOL recipe, 300 steps: collapses"),
    "background_shortcut": Kind(False, Recipe("background", steps=400, batch_size=128, augment=OBJECT_SCALE_VIEWS),
                                "cross-entropy on the background's pattern kind only (400 steps)"),
}


def _template() -> backbones.Backbone:
    """A ``resnet_small`` backbone in the plain layout (the architecture every kind shares)."""
    return backbones.Backbone(backbones.create("resnet_small"), arch="resnet_small", format="plain",
                              source=backbones.Source(None, None, "template"), feature_dim=128,
                              mean=None, std=None, input_size=64)


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
        "kind": name, "expected": "semantic" if kind.positive else "not semantic", "about": kind.about,
        "command": f"PYTHONPATH=. python scripts/build_known_answer.py train --kinds {name} --seeds {seed} --threads 1",
        "seed": seed, "steps": steps, "wall_s": wall,
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "python": platform.python_version(), "device": "cpu"},
        "file": path.name, "bytes": path.stat().st_size, "sha256": sha256(path),
        "metrics": measure(path, cfg, out / "cache"), "history": history,
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
            print(f"{file}: {m['steps']} steps, {m['wall_s']} s, NMI {m['metrics']['nmi']:.3f}, "
                  f"background NMI {m['metrics']['background_nmi']:.3f}", flush=True)


def probe(kinds: list[str], out: Path) -> None:
    from probe.demo.runner import DEMO_IMAGES, DEMO_OPTIONS, build_world, probe_world

    manifest = read_manifest(out)
    images, masks = build_world(out / "world", images=DEMO_IMAGES, seed=0)
    for name in kinds:
        files = sorted((e["seed"], f) for f, e in manifest["files"].items() if e["kind"] == name)
        checkpoints = [(f"{name}_seed{seed}", out / f) for seed, f in files]
        started = time.perf_counter()
        probe_world(images, masks, checkpoints, out=out / "runs" / name, device="cpu", seed=0, **DEMO_OPTIONS)
        print(f"{name}: {len(checkpoints)} backbones probed in {time.perf_counter() - started:.0f} s", flush=True)


#: The verdict's tests as metrics.json records them, plus the object test as the verdict counts it (only with
#: faithful maps) and the combined flag.
TESTS = ("agreement", "localisation", "faithfulness", "localisation_counted", "semantic")


def verdicts(out: Path) -> dict:
    """Per backbone and test: True (passes), False (fails) or None (not judged); per test the false-positive
    count (a negative passes) and the false-negative count (a positive does not pass)."""
    rows, counts = [], {t: {"fp": 0, "fn": 0, "negatives": 0, "positives": 0} for t in TESTS}
    for name, kind in KINDS.items():
        path = out / "runs" / name / "metrics.json"
        if not path.exists():
            continue
        for b in json.loads(path.read_text())["backbones"]:
            if b["role"] != "probe":
                continue
            evidence = b["evidence"]
            counted = evidence["localisation"] if evidence["faithfulness"] else None
            outcome = {**evidence, "localisation_counted": counted, "semantic": b["semantic"]}
            rows.append({"backbone": b["name"], "kind": name, "positive": kind.positive, **outcome,
                         "nmi": b["clustering"]["nmi"]})
            for test, value in outcome.items():
                c = counts[test]
                c["positives" if kind.positive else "negatives"] += 1
                if kind.positive and value is not True:
                    c["fn"] += 1
                if not kind.positive and value is True:
                    c["fp"] += 1
    summary = {"backbones": rows, "counts": counts}
    atomic_write_json(out / "verdicts.json", summary)
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=("train", "probe", "verdicts"))
    p.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=list(KINDS))
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument("--out", default="/work/known", help="folder for checkpoints, MANIFEST.json and runs/")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: byte-identical files on one torch build)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("PROBE_NO_PROGRESS", "1")
    out = Path(args.out)
    if args.stage == "train":
        train(args.kinds, args.seeds, out)
    elif args.stage == "probe":
        probe(args.kinds, out)
    else:
        print(json.dumps(verdicts(out)["counts"], indent=1))


if __name__ == "__main__":
    main()
