"""Train one shipped reference backbone and record it in probe/demo/checkpoints/MANIFEST.json.

    PYTHONPATH=. python scripts/build_demo_checkpoints.py --method moco [--seed 0] [--threads 1]

Trains like ``probe pretrain --method M --out probe/demo/checkpoints/<file> --seed S`` with torch
limited to ``--threads`` threads (one thread: byte-identical files on the same torch build), then writes
the file's sha256, the wall time and the held-out measurements into the manifest. ``--controls`` records
the random-init control instead (of the ResNets, or with ``--method supervised_vit`` of the ViT's
architecture).
``--record`` skips training: the file is already in place (e.g. written by the same recipe and seed
through scripts/demo_world_trials.py) and its held-out measurements are taken on the file itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import backbones  # noqa: E402
from probe.demo import checkpoints  # noqa: E402
from probe.demo.measure import EvalSet, evaluate  # noqa: E402
from probe.demo.objectives import OBJECTIVES  # noqa: E402
from probe.demo.pretrain import control_metrics, pretrain, recipe  # noqa: E402
from probe.fileio import atomic_write_json  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=sorted(checkpoints.FILES))
    p.add_argument("--controls", action="store_true", help="measure the random-init control of the architecture")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--record", action="store_true", help="measure and record the file already in place instead of training"
    )
    p.add_argument("--wall-s", type=float, help="with --record: the training wall time to record")
    p.add_argument("--history", help="with --record: the training run's JSON-lines measurement log to record")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = checkpoints.manifest() or {
        "about": "reference backbones of the demo, trained on the synthetic world",
        "files": {},
        "controls": {},
    }
    environment = {
        "torch": torch.__version__,
        "threads": args.threads,
        "python": platform.python_version(),
        "device": "cpu",
    }
    if args.controls:
        r = recipe(args.method or "supervised")
        key = "random_init" if r.arch == recipe("supervised").arch else f"random_init_{r.arch}"
        data["controls"][key] = {
            "arch": r.arch,
            "arch_kwargs": r.arch_kwargs,
            "seed": args.seed,
            "normalize": "imagenet",
            "metrics": control_metrics(r, seed=args.seed),
        }
    elif args.method:
        name, fmt = checkpoints.FILES[args.method]
        out = checkpoints.CHECKPOINT_DIR / name
        command = (
            f"PYTHONPATH=. python scripts/build_demo_checkpoints.py --method {args.method} --seed {args.seed} "
            f"--threads {args.threads}"
        )
        r = recipe(args.method)
        if args.record:
            loaded = backbones.load(out)
            metrics = evaluate(loaded, loaded.mean is not None, EvalSet.build(r.world, r.eval_size), "cpu", args.seed)
            history = None
            if args.history:
                lines = Path(args.history).read_text().splitlines()
                history = [
                    {k: v for k, v in json.loads(line).items() if k not in ("method", "seed")}
                    for line in lines
                    if line.strip()
                ]
            summary = {"steps": r.steps, "wall_s": args.wall_s, "metrics": metrics, "history": history}
        else:
            summary = pretrain(r, out, seed=args.seed, device="cpu")
            print(f"{args.method}: {summary['steps']} steps in {summary['wall_s']:.0f} s -> {out}")
        data["files"][name] = {
            "method": args.method,
            "format": fmt,
            "arch": r.arch,
            "arch_kwargs": r.arch_kwargs,
            "input": "ImageNet mean/std" if OBJECTIVES[r.method].normalize else "[0, 1], no mean/std",
            "command": command,
            "seed": args.seed,
            "steps": summary["steps"],
            "wall_s": summary["wall_s"],
            "environment": environment,
            "bytes": out.stat().st_size,
            "sha256": checkpoints.sha256(out),
            "metrics": summary["metrics"],
            "history": summary["history"],
            "recipe": r.to_json(),
        }
    else:
        p.error("give --method or --controls")
    atomic_write_json(checkpoints.MANIFEST, data)


if __name__ == "__main__":
    main()
