"""How ``probe run`` scales with the number of images: time per stage and peak resident memory.

One shape world of the largest size (64 px images with label masks, 5 shapes) and a seeded
``resnet_small`` checkpoint; for each size N, ``probe run --max-images N`` (a seeded sample) in a
fresh child process with its own output folder, so every run extracts its own features and its peak
resident set (``ru_maxrss``) is its own. Extraction should grow linearly with N; explain and evaluate
work on the capped, precision-sized evaluation subset and should not grow; memory should stay flat
(features are memory-mapped). Writes a table and a plot. Run:
``probe bench scaling [--sizes 1000,2000,5000,10000,20000] [--plot FILE] [--json FILE]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .pipeline import SHAPES, _checkpoint, write_shapes

SIZES = (1000, 2000, 5000, 10000, 20000)
QUICK_SIZES = (100, 200)
SIZE = 64
STAGES = ("extract", "cluster", "head", "explain", "evaluate", "report")

_CHILD = """
import json, resource, sys, time
from probe.pipeline.run import run_probe
args = json.loads(sys.argv[1])
start = time.perf_counter()
results = run_probe(args["weights"], data=args["images"], masks=args["masks"], k=5, out=args["out"],
                    max_images=args["n"], device=args["device"])
print(json.dumps({"n": args["n"], "wall_s": time.perf_counter() - start, "stages_s": results.timings,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _one(n: int, images: Path, masks: Path, weights: Path, out: Path, device: str, threads: int | None) -> dict:
    shutil.rmtree(out, ignore_errors=True)  # a kept --work folder: never resume an earlier run's features
    env = {
        **os.environ,
        "PROBE_NO_PROGRESS": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    args = {
        "n": n,
        "images": str(images),
        "masks": str(masks),
        "weights": str(weights),
        "out": str(out),
        "device": device,
    }
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"probe run on {n} images failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], path: str | Path) -> Path:
    """Seconds per stage and peak memory against the number of images, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), layout="constrained")
    times, memory = fig.subplots(1, 2)
    n = [r["n"] for r in rows]
    for stage in STAGES:
        times.plot(n, [r["stages_s"].get(stage, 0.0) for r in rows], marker="o", label=stage)
    times.plot(n, [r["wall_s"] for r in rows], "k--", marker="o", label="whole run")
    times.set_xlabel("images")
    times.set_ylabel("seconds")
    times.set_title("time per stage")
    times.legend(fontsize=8)
    times.grid(alpha=0.3)
    memory.plot(n, [r["peak_rss_mib"] for r in rows], marker="o", color="tab:red")
    memory.set_ylim(bottom=0)
    memory.set_xlabel("images")
    memory.set_ylabel("MiB")
    memory.set_title("peak resident memory")
    memory.grid(alpha=0.3)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100)
    return Path(path)


def run(
    *,
    quick: bool = False,
    sizes: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    work: str | None = None,
    plot_path: str | None = None,
    json_path: str | None = None,
) -> list[dict]:
    """``probe run`` on growing seeded samples of one shape world; print a table (and plot it)."""
    chosen = tuple(int(s) for s in sizes.split(",")) if sizes else (QUICK_SIZES if quick else SIZES)
    with tempfile.TemporaryDirectory(prefix="probe-bench-scaling-") as scratch:
        folder = Path(work) if work else Path(scratch)
        largest = max(chosen)
        data = folder / f"shapes-{largest}-{SIZE}"
        if not (data / "masks" / "categories.json").is_file():
            per = {s: largest // len(SHAPES) + (1 if i < largest % len(SHAPES) else 0) for i, s in enumerate(SHAPES)}
            write_shapes(data, per, size=SIZE, seed=0)
        weights = folder / "resnet_small.pth"
        if not weights.is_file():
            _checkpoint("resnet_small", weights, seed=1)
        rows = [
            _one(n, data / "images", data / "masks", weights, folder / f"run-{n}", device, threads)
            for n in sorted(chosen)
        ]
    print(f"probe run on seeded samples of {largest} shape images at {SIZE} px, resnet_small, k=5, {device}")
    print("| images | " + " | ".join(STAGES) + " | whole run | peak RSS |")
    print("|---|" + "---|" * (len(STAGES) + 2))
    for r in rows:
        cells = [f"{r['stages_s'].get(s, 0.0):.1f} s" for s in STAGES]
        print(f"| {r['n']:,} | " + " | ".join(cells) + f" | {r['wall_s']:.1f} s | {r['peak_rss_mib']:.0f} MiB |")
    if plot_path:
        plot(rows, plot_path)
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2))
    return rows
