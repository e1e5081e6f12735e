"""ViT attribution benchmark: the four ViT methods against a plain forward+backward of the same model and batch.

The model is timm's ViT-S/16 (1000 classes, default init, eval mode, timm's fused attention as built);
times are medians of warm repeats run round-robin in one process, peak memory is measured per method in a
fresh subprocess, as in ``probe.bench.attribution``. See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch

from .attribution import child_peak_memory, peak_growth, time_calls

METHODS = ("forward_backward", "transformer_attribution", "generic_attention", "attention_rollout", "raw_attention")
LABELS = {
    "forward_backward": "fwd+bwd",
    "transformer_attribution": "transformer attribution",
    "generic_attention": "generic attention",
    "attention_rollout": "rollout",
    "raw_attention": "raw attention",
}


def build(arch: str, batch: int, size: int, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    """timm ``arch`` (1000 classes, default init, eval mode) for ``size`` px input, and a seeded batch."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, img_size=size).eval()
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return model, images


def task(method: str, model: torch.nn.Module, images: torch.Tensor) -> Callable[[], object]:
    """One call of ``method``. forward_backward: ``model(x)``, then backward of the sum of each image's top-1
    logit, with the parameters requiring grad as built (the gradients are dropped after)."""
    from probe.attribution.transformer import vit_maps

    if method == "forward_backward":

        def forward_backward() -> None:
            logits = model(images)
            logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
            model.zero_grad(set_to_none=True)

        return forward_backward
    return lambda: vit_maps(model, images, None, method)


def peak_memory_child(arch: str, method: str, batch: int, size: int) -> int:
    """(In the child process.) Bytes by which a warm call of ``method`` raises the peak resident set."""
    model, images = build(arch, batch, size)
    return peak_growth(task(method, model, images))


def measure(arch: str, batch: int, size: int, repeats: int, memory: bool, cpu_time: bool = False) -> dict:
    model, images = build(arch, batch, size)
    clock = time.process_time if cpu_time else time.perf_counter
    seconds = time_calls({m: task(m, model, images) for m in METHODS}, repeats, clock)
    row = {"model": arch, "batch": batch, "size": size, "repeats": repeats, "threads": torch.get_num_threads(),
           "clock": "process CPU time" if cpu_time else "wall time"}
    for method in METHODS:
        row[f"{method}_s"] = statistics.median(seconds[method])
        row[f"{method}_all_s"] = seconds[method]
        if memory:
            args = [arch, method, str(batch), str(size)]
            row[f"{method}_peak_bytes"] = child_peak_memory("probe.bench.vit", args, f"{method} on {arch}")
    return row


def table(rows: Sequence[dict]) -> str:
    """Markdown table: per method the median time and peak-memory growth, and both as ratios to fwd+bwd."""
    columns = ("model", "batch×size", "method", "time", "time / fwd+bwd", "peak memory", "memory / fwd+bwd")
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for r in rows:
        base_s, base_mem = r["forward_backward_s"], r.get("forward_backward_peak_bytes")
        for method in METHODS:
            seconds, peak = r[f"{method}_s"], r.get(f"{method}_peak_bytes")
            ratio = "" if method == "forward_backward" else f"**{seconds / base_s:.2f}×**"
            memory = ["n/a", "n/a"]
            if peak is not None and base_mem is not None:
                share = "" if method == "forward_backward" else f"**{peak / base_mem:.2f}×**"
                memory = [f"{peak / 2**20:.0f} MiB", share]
            cells = [r["model"], f"{r['batch']}×{r['size']}", LABELS[method], f"{seconds:.2f} s", ratio, *memory]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="probe bench vit", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: batch 2, 112 px, 1 repeat")
    parser.add_argument("--model", default="vit_small_patch16_224", help="timm ViT (default: vit_small_patch16_224)")
    parser.add_argument("--batch", type=int, help="images per call (default: 8)")
    parser.add_argument("--size", type=int, help="image height and width (default: 224)")
    parser.add_argument("--repeats", type=int, help="timed calls per method after a warm-up (default: 3)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with this process's CPU time instead of wall time (with --threads 1: robust "
                        "on a machine other jobs share)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    parser.add_argument("--child", nargs=4, metavar=("ARCH", "METHOD", "BATCH", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the memory subprocesses use as many
    if args.child:
        arch, method, batch, size = args.child
        print(peak_memory_child(arch, method, int(batch), int(size)))
        return 0
    defaults = (2, 112, 1) if args.quick else (8, 224, 3)
    for name, value in zip(("batch", "size", "repeats"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, value)
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.2f} at start", flush=True)
    row = measure(args.model, args.batch, args.size, args.repeats, not args.no_memory, args.cpu_time)
    print(f"times: {row['clock']}")
    print(table([row]))
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    if args.json:
        from probe.fileio import atomic_write_json

        atomic_write_json(args.json, {"load_start": load[0], "rows": [row]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
