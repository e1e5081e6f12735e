"""Why is AGF's perturbation gap below Grad-CAM's on the demo backbones? Experiments at 64 px.

    PYTHONPATH=. python scripts/faithfulness_puzzle.py --demo DEMO_OUT --out DIR [--images 300] [--threads 1]
    PYTHONPATH=. python scripts/faithfulness_puzzle.py --demo RUN --backbones NAME ... --out DIR --verdict-only

``DEMO_OUT`` is the folder ``probe demo`` wrote, or any probe run on the demo world (e.g. a
``runs/<kind>_seed<S>`` of scripts/build_known_answer.py); its pseudo-class models are explained, as in the report.
``--verdict-only`` measures AGF's gap under black and blur removal only, with the proposed three-outcome
faithfulness result (passes / fails / inconclusive against a minimum effect of 0.05).
On a seeded sample of the demo world's one-category images, each backbone's maps (AGF with
``residual_eps`` 0.01 and 0, Grad-CAM, a random map, the object mask) are put through positive and
negative perturbation while varying one thing at a time:

- the pixel order: the signed map (the published protocol), its positive part with ties among the zeros
  in row-major order (what a stable sort does), its positive part with ties in a seeded random order,
  and the signed map smoothed by a box filter (5x5 at 64 px);
- the removal value: black (the published protocol), the world's mean colour, a Gaussian blur of the image;
- where AGF's most negative pixels lie: share of the most negative 10 % within 1 and 2 px of an object
  edge, against the share of all pixels there.

Every figure is a mean over images with a 95 % percentile-bootstrap interval (2,000 resamples over
images, paired where two settings are compared). Writes ``DIR/puzzle.json`` and ``DIR/*.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, from a source checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))  # perturbation_variants

import numpy as np  # noqa: E402
import torch  # noqa: E402
from perturbation_variants import BOOTSTRAP, CONFIGS, VERDICT_CONFIGS, filler, hits, measure_model, removal_order  # noqa: E402

from probe import explain  # noqa: E402
from probe.demo.measure import EVAL_SEED  # noqa: E402
from probe.demo.runner import DEMO_IMAGES  # noqa: E402
from probe.demo.world import WorldConfig, render_arrays  # noqa: E402
from probe.evaluation.faithfulness import perturbation_hits  # noqa: E402
from probe.pipeline import CONTROL_NAME, load_probe_model  # noqa: E402
from probe.pipeline.saved import backbone_dir  # noqa: E402

BACKBONES = ("simclr", "moco", "byol", "supervised", CONTROL_NAME)


def maps_of(
    model, x: torch.Tensor, target: torch.Tensor, masks: np.ndarray, batch: int = 16, only_agf: bool = False
) -> dict[str, torch.Tensor]:
    """AGF (residual_eps 0.01 and 0), Grad-CAM, a seeded random map, and the object mask as a map (or AGF only)."""
    maps = {}
    methods = (
        ("agf", "agf", {}),
        ("agf_eps0", "agf", {"residual_eps": 0.0}),
        ("gradcam", "gradcam", {}),
        ("random", "random", {"seed": 0}),
    )
    for key, method, options in methods[:1] if only_agf else methods:
        maps[key] = torch.cat(
            [
                explain(model, x[i : i + batch], target[i : i + batch], method=method, **options).cpu()
                for i in range(0, len(x), batch)
            ]
        )
    maps["mask"] = torch.from_numpy(masks > 0).float()
    return maps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", required=True, help="output folder of `probe demo` (or of a probe run on the demo world)")
    p.add_argument("--out", required=True)
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    p.add_argument(
        "--verdict-only",
        action="store_true",
        help="only AGF's gap under black and blur removal, with its three-outcome result (the verdict check)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arrays = render_arrays(WorldConfig(), DEMO_IMAGES, EVAL_SEED, cache_dir=out / "cache")
    single = np.flatnonzero(arrays["n_categories"] == 1)
    chosen = np.sort(np.random.default_rng(args.seed).choice(single, size=min(args.images, len(single)), replace=False))
    raw = torch.from_numpy(arrays["images"][chosen]).permute(0, 3, 1, 2).float() / 255
    masks = arrays["masks"][chosen]
    world_mean = torch.from_numpy(arrays["images"].reshape(-1, 3).mean(0) / 255).float()
    results_path = out / "puzzle.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["setup"] = {
        "images": len(chosen),
        "world": f"demo world (seed {EVAL_SEED}), one-category images",
        "seed": args.seed,
        "bootstrap": BOOTSTRAP,
        "world_mean": world_mean.tolist(),
    }
    for name in args.backbones:
        if name in results.get("backbones", {}):
            continue
        started = time.perf_counter()
        saved = load_probe_model(backbone_dir(Path(args.demo), name))
        model, normalization = saved.model, saved.normalization
        norm = normalization.apply
        x = norm(raw)
        with torch.no_grad():
            target = torch.cat([model(x[i : i + 120]).argmax(1) for i in range(0, len(x), 120)])
        maps = maps_of(model, x, target, masks, only_agf=args.verdict_only)
        # the library's protocol on the signed AGF map is what this script's "signed, black" measures
        lib = perturbation_hits(model, x[:40], maps["agf"][:40], target[:40], normalization=normalization)
        mine = hits(
            model,
            x[:40],
            norm(filler(raw[:40], "black", world_mean)),
            target[:40],
            {m: removal_order(maps["agf"][:40], "signed", m) for m in ("positive", "negative")},
        )
        assert all((lib[m].hits.numpy() == mine[m]).all() for m in mine), "does not reproduce the library"
        found = measure_model(
            model,
            raw,
            norm,
            masks,
            maps,
            target,
            world_mean,
            seed=args.seed,
            configs=VERDICT_CONFIGS if args.verdict_only else CONFIGS,
        )
        results.setdefault("backbones", {})[name] = {**found, "seconds": round(time.perf_counter() - started, 1)}
        results_path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
