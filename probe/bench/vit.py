"""ViT attribution benchmark: the four ViT methods against a plain forward+backward of the same model and batch.

The model is timm's ViT-S/16 (1000 classes, default init, eval mode, timm's fused attention as built);
times are medians of warm repeats run round-robin in one process, peak memory is measured per method in a
fresh subprocess, as in ``probe.bench.attribution``. See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch

from .attribution import child_peak_memory, forward_backward, peak_growth, time_calls

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
    """One call of ``method`` (``vit_maps`` for each image's top-1 class), or ``"forward_backward"``
    (:func:`probe.bench.attribution.forward_backward`)."""
    from probe.attribution.transformer import vit_maps

    if method == "forward_backward":
        return forward_backward(model, images)
    return lambda: vit_maps(model, images, None, method)


def peak_memory_child(arch: str, method: str, batch: int, size: int) -> int:
    """(In the child process.) Bytes by which a warm call of ``method`` raises the peak resident set."""
    model, images = build(arch, batch, size)
    return peak_growth(task(method, model, images))


def measure(arch: str, batch: int, size: int, repeats: int, memory: bool, cpu_time: bool = False) -> dict:
    model, images = build(arch, batch, size)
    clock = time.process_time if cpu_time else time.perf_counter
    seconds = time_calls({m: task(m, model, images) for m in METHODS}, repeats, clock)
    row = {
        "model": arch,
        "batch": batch,
        "size": size,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "clock": "process CPU time" if cpu_time else "wall time",
    }
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


def run(
    *,
    quick: bool = False,
    model: str | None = None,
    batch: int | None = None,
    size: int | None = None,
    repeats: int | None = None,
    threads: int | None = None,
    cpu_time: bool = False,
    memory: bool = True,
    json_path: str | None = None,
) -> dict:
    """Measure the ViT methods against a forward+backward and print the table (``probe bench vit``)."""
    if threads:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the memory subprocesses use as many
    arch = model or "vit_small_patch16_224"
    quick_or_full = (2, 112, 1) if quick else (8, 224, 3)
    batch, size, repeats = (given or default for given, default in zip((batch, size, repeats), quick_or_full))
    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} at start",
        flush=True,
    )
    row = measure(arch, batch, size, repeats, memory, cpu_time)
    print(f"times: {row['clock']}")
    print(table([row]))
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    if json_path:
        from probe.fileio import atomic_write_json

        atomic_write_json(json_path, {"load_start": load[0], "rows": [row]})
    return row


if __name__ == "__main__":  # the child process of child_peak_memory: ARCH METHOD BATCH SIZE
    arch, method, batch, size = sys.argv[1:5]
    print(peak_memory_child(arch, method, int(batch), int(size)))
