"""Attribution benchmark: AGF and Grad-CAM against a plain forward+backward of the same model and batch.

Times are medians of warm repeats, run round-robin in one process so that load changes hit all
methods alike. Peak memory is measured per method in a fresh subprocess: the growth of the
process's peak resident set (VmHWM, reset through /proc/self/clear_refs) over its resident set
just before a second, warm call, with glibc told to return every allocation over 64 KiB to the
OS at once (MALLOC_MMAP_THRESHOLD_), so that freed tensors leave the resident set.
See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import torch
import torchvision

METHODS = ("forward_backward", "agf", "gradcam")
LABELS = {"forward_backward": "fwd+bwd", "agf": "AGF", "gradcam": "Grad-CAM"}


def build(arch: str, batch: int, size: int, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    """A torchvision ``arch`` (1000 classes, default init, eval mode) and a seeded batch of images."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)().eval()
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return model, images


def forward_backward(model: torch.nn.Module, images: torch.Tensor) -> Callable[[], None]:
    """The reference call every method is measured against: ``model(x)``, then backward of the sum of each
    image's top-1 logit, with the parameters requiring grad as built (the gradients are dropped after)."""

    def call() -> None:
        logits = model(images)
        logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
        model.zero_grad(set_to_none=True)

    return call


def task(method: str, model: torch.nn.Module, images: torch.Tensor) -> Callable[[], object]:
    """One call of ``method`` through ``probe.explain``, or ``"forward_backward"`` (:func:`forward_backward`)."""
    import probe

    if method == "forward_backward":
        return forward_backward(model, images)
    return lambda: probe.explain(model, images, method=method)


def time_methods(model: torch.nn.Module, images: torch.Tensor, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of every method: one warm-up each, then ``repeats`` round-robin rounds."""
    return time_calls({m: task(m, model, images) for m in METHODS}, repeats)


def time_calls(
    calls: dict[str, Callable[[], object]], repeats: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, list[float]]:
    """Seconds per call of each of ``calls`` on ``clock`` (wall time by default; ``time.process_time``
    counts only this process's CPU time): one warm-up each, then ``repeats`` round-robin rounds, so
    that load changes hit all of them alike."""
    for call in calls.values():
        call()
    seconds: dict[str, list[float]] = {m: [] for m in calls}
    for _ in range(repeats):
        for method, call in calls.items():
            start = clock()
            call()
            seconds[method].append(clock() - start)
    return seconds


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory_child(arch: str, method: str, batch: int, size: int) -> int:
    """(In the child process.) Bytes by which a warm call of ``method`` raises the peak resident set."""
    model, images = build(arch, batch, size)
    return peak_growth(task(method, model, images))


def peak_growth(call: Callable[[], object]) -> int:
    """Bytes by which a second, warm ``call`` raises the process's peak resident set over its resident set
    just before (VmHWM is reset through /proc/self/clear_refs)."""
    call()
    with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current resident set
        fh.write("5")
    before = _status_kib("VmRSS")
    call()
    return (_status_kib("VmHWM") - before) * 1024


def peak_memory(arch: str, method: str, batch: int, size: int) -> int | None:
    """Peak-memory growth of one call, measured in a fresh subprocess (None if it failed)."""
    return child_peak_memory("probe.bench.attribution", [arch, method, str(batch), str(size)], f"{method} on {arch}")


def child_peak_memory(module: str, args: Sequence[str], label: str) -> int | None:
    """Run ``python -m module ARGS`` (the module's child entry) with glibc returning every allocation over
    64 KiB to the OS at once (so that freed tensors leave the resident set); its last output line, as bytes, or None."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0", PROBE_NO_PROGRESS="1")
    done = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"memory measurement of {label} failed:\n{done.stderr.strip()}", file=sys.stderr)
        return None
    return int(done.stdout.strip().splitlines()[-1])


def measure(arch: str, batch: int, size: int, repeats: int, memory: bool) -> dict:
    model, images = build(arch, batch, size)
    seconds = time_methods(model, images, repeats)
    row = {"model": arch, "batch": batch, "size": size, "repeats": repeats}
    for method in METHODS:
        row[f"{method}_s"] = statistics.median(seconds[method])
        row[f"{method}_all_s"] = seconds[method]
        if memory:
            row[f"{method}_peak_bytes"] = peak_memory(arch, method, batch, size)
    return row


def table(rows: Sequence[dict]) -> str:
    """Markdown table: medians, and time/memory ratios to the forward+backward."""
    head = (
        "| model | batch×size | fwd+bwd | AGF | AGF / fwd+bwd | Grad-CAM | Grad-CAM / fwd+bwd "
        "| peak fwd+bwd | peak AGF | AGF / fwd+bwd | peak Grad-CAM | Grad-CAM / fwd+bwd |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        base = r["forward_backward_s"]
        cells = [
            r["model"],
            f"{r['batch']}×{r['size']}",
            f"{base:.2f} s",
            f"{r['agf_s']:.2f} s",
            f"**{r['agf_s'] / base:.2f}×**",
            f"{r['gradcam_s']:.2f} s",
            f"{r['gradcam_s'] / base:.2f}×",
        ]
        peaks = [r.get(f"{m}_peak_bytes") for m in METHODS]
        known = [p for p in peaks if p is not None]
        if len(known) < len(peaks):
            cells += ["n/a"] * 5
        else:
            mib = [p / 2**20 for p in known]
            cells += [
                f"{mib[0]:.0f} MiB",
                f"{mib[1]:.0f} MiB",
                f"**{mib[1] / mib[0]:.2f}×**",
                f"{mib[2]:.0f} MiB",
                f"{mib[2] / mib[0]:.2f}×",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(
    *,
    quick: bool = False,
    models: str | None = None,
    batch: int | None = None,
    size: int | None = None,
    repeats: int | None = None,
    memory: bool = True,
    json_path: str | None = None,
) -> int:
    """Time (and unless ``memory`` is False, measure the peak memory of) AGF and Grad-CAM against a
    forward+backward on each of ``models``; print the table. ``quick``: small sizes for a smoke run."""
    defaults = ("resnet18,vgg11", 2, 64, 1) if quick else ("resnet50,vgg16", 8, 224, 3)
    models = models or defaults[0]
    batch, size, repeats = batch or defaults[1], size or defaults[2], repeats or defaults[3]
    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} at start",
        flush=True,
    )
    rows = []
    for arch in models.split(","):
        rows.append(measure(arch.strip(), batch, size, repeats, memory))
        print(f"measured {arch}", file=sys.stderr, flush=True)
    print(table(rows))
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    if json_path:
        from probe.fileio import atomic_write_json

        atomic_write_json(json_path, {"load_start": load[0], "rows": rows})
    return 0


if __name__ == "__main__":  # the child process of peak_memory: ARCH METHOD BATCH SIZE
    arch, method, batch, size = sys.argv[1:5]
    print(peak_memory_child(arch, method, int(batch), int(size)))
