"""On a CUDA machine: every default attribution method gives the CPU's maps, and how fast it explains.

    PYTHONPATH=. python scripts/gpu_explain_check.py [--batch 32] [--size 224] [--json OUT.json]

For AGF, Grad-CAM and integrated gradients on torchvision's ResNet-50, and the four ViT methods on timm's
ViT-S/16 (random weights, seeded, eval mode, a Linear head of 10 classes), it explains 4 images on the CPU
and on the GPU and prints the smallest per-image Pearson r between the two (float32 on both; the GPU's
kernels round differently, so r, not equality, is compared, and r < 0.999 is flagged). Then the GPU's
throughput at ``--batch`` images of ``--size`` px (one warm-up call, then 3 timed, synchronised) and the
peak GPU memory of one call. Used for docs/BENCHMARKS.md ("On a GPU").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe import explain  # noqa: E402

CNN_METHODS = ("agf", "gradcam", "integrated_gradients")
VIT_METHODS = ("transformer_attribution", "generic_attention", "attention_rollout", "raw_attention")


def _models() -> dict[str, nn.Module]:
    import timm
    import torchvision

    torch.manual_seed(0)
    resnet = torchvision.models.resnet50(num_classes=10)
    vit = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=10)
    return {"resnet50": resnet.eval(), "vit_small_patch16_224": vit.eval()}


def _pearson(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1).div(a.norm(dim=1) * b.norm(dim=1)).tolist()


def _options(method: str) -> dict:
    return {"n_steps": 16, "internal_batch_size": 64} if method == "integrated_gradients" else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--json", dest="json_path")
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_explain_check: needs CUDA")
    g = torch.Generator().manual_seed(1)
    small = torch.randn(4, 3, args.size, args.size, generator=g)
    big = torch.randn(args.batch, 3, args.size, args.size, generator=g).cuda()
    target = torch.arange(4) % 10
    rows = []
    for name, model in _models().items():
        methods = VIT_METHODS if name.startswith("vit") else CNN_METHODS
        for method in methods:
            on_cpu = explain(model.cpu(), small, target=target, method=method, **_options(method))
            gpu_model = model.cuda()
            on_gpu = explain(gpu_model, small.cuda(), target=target.cuda(), method=method, **_options(method)).cpu()
            r = _pearson(on_cpu, on_gpu)
            explain(gpu_model, big, method=method, **_options(method))  # warm-up
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            began = time.perf_counter()
            for _ in range(3):
                explain(gpu_model, big, method=method, **_options(method))
            torch.cuda.synchronize()
            seconds = (time.perf_counter() - began) / 3
            row = {
                "model": name,
                "method": method,
                "min_r_cpu_vs_gpu": min(r),
                "images_per_s": args.batch / seconds,
                "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            }
            rows.append(row)
            print(
                f"{name:24s} {method:26s} r(cpu,gpu) >= {row['min_r_cpu_vs_gpu']:.6f}  "
                f"{row['images_per_s']:8.1f} images/s  peak {row['peak_gib']:.2f} GiB",
                flush=True,
            )
            model.cpu()
    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "batch": args.batch,
        "size": args.size,
        "rows": rows,
    }
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=1))
    for row in rows:
        if row["min_r_cpu_vs_gpu"] < 0.999:
            print(f"note: {row['model']} {row['method']}: GPU maps differ from the CPU's (r < 0.999)", flush=True)


if __name__ == "__main__":
    main()
