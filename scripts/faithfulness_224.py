"""The AGF paper's perturbation comparison at 224 px: a supervised ResNet / VGG trained by us on a 224-px world.

    PYTHONPATH=. python scripts/faithfulness_224.py --device cuda --out DIR            # the full run (GPU, ~3 min)
    PYTHONPATH=. python scripts/faithfulness_224.py --device cpu --out DIR --tiny      # a smoke test of the code path

For each architecture (torchvision ``resnet18`` and ``vgg16_bn``, 6 outputs, trained from scratch; ``resnet_small``,
the demo's small ResNet with an ImageNet stem, is cheap enough for a CPU):
1. draw the built-in world at 224 px (training world seed 1, held-out world 999983), in parallel processes;
2. train it with cross-entropy on the categories: crops of 20-50 % of the image resized to 112 px, so that
   objects keep about their size in the 224-px images (the demo's recipe, scaled); AdamW, cosine schedule;
3. measure its held-out accuracy, then explain held-out one-category images for their label (the paper's
   protocol) with AGF and Grad-CAM and run every perturbation setting of scripts/perturbation_variants.py.
Writes ``DIR/faithfulness_224.json`` after each architecture (a rerun skips the ones already there).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, from a source checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))  # perturbation_variants

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from perturbation_variants import BOOTSTRAP, measure_model  # noqa: E402

from backbones.archs.small_resnet import SmallResNet  # noqa: E402
from backbones.preprocessing import IMAGENET  # noqa: E402
from probe import explain  # noqa: E402
from probe.demo.augment import AugmentConfig, make_views  # noqa: E402
from probe.demo.measure import EVAL_SEED  # noqa: E402
from probe.demo.world import WorldConfig, render_arrays  # noqa: E402


def _chunk(job: tuple[WorldConfig, int, int, int]) -> dict[str, np.ndarray]:
    cfg, n, seed, start = job
    return render_arrays(cfg, n, seed, start)


def draw(cfg: WorldConfig, n: int, seed: int, workers: int) -> dict[str, np.ndarray]:
    """Images ``0..n-1`` of world ``seed`` (each depends only on (seed, index), so chunks can be drawn in parallel)."""
    size = math.ceil(n / max(1, workers * 4))
    jobs = [(cfg, min(size, n - start), seed, start) for start in range(0, n, size)]
    if workers <= 1:
        parts = [_chunk(job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_chunk, jobs))
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def build(arch: str, classes: int) -> torch.nn.Module:
    """A classifier from scratch: torchvision's resnet18 or vgg16_bn, or the demo's small ResNet with an
    ImageNet stem."""
    if arch == "resnet18":
        return torchvision.models.resnet18(num_classes=classes)
    if arch == "vgg16_bn":
        return torchvision.models.vgg16_bn(num_classes=classes)
    if arch == "resnet_small":  # widths 16-128 like the demo's backbones; the stem downsamples 4x, as at ImageNet scale
        model = SmallResNet(stem="imagenet")
        model.fc = torch.nn.Linear(model.feature_dim, classes)
        return model
    raise SystemExit(f"unknown --archs entry {arch!r}: resnet18, vgg16_bn or resnet_small")


def train(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, args, device: torch.device
) -> list[float]:
    """Cross-entropy on the categories over ``args.steps`` batches of object-scale crops; returns the loss
    every 50 steps."""
    views = AugmentConfig(size=args.image_size // 2, scale=(0.2, 0.5))
    norm = IMAGENET.apply
    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    warm = max(1, args.steps // 30)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, args.steps - warm)))
        ),
    )
    model.train()
    losses = []
    for step in range(args.steps):
        index = torch.randint(images.shape[0], (args.batch,), generator=gen)
        x = norm(make_views(images[index].to(device), views, gen)).contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), labels[index].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == args.steps - 1:
            losses.append(round(float(loss.detach()), 4))
    return losses


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, batch: int = 100) -> float:
    pred = torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return round(float((pred.cpu() == labels).float().mean()), 4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--archs", nargs="+", default=["resnet18", "vgg16_bn"])
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--train-images", type=int, default=10000)
    p.add_argument("--eval-images", type=int, default=1000, help="held-out images for the accuracy")
    p.add_argument("--explain-images", type=int, default=500, help="one-category held-out images explained")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--workers", type=int, default=16, help="processes drawing the world")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--budget-s",
        type=float,
        default=170.0,
        help="start no further architecture after this many seconds (default: %(default)s)",
    )
    p.add_argument("--tiny", action="store_true", help="smoke test: 32 training images, 2 steps, 4 explained images")
    args = p.parse_args()
    if args.tiny:
        args.train_images, args.eval_images, args.explain_images, args.steps, args.batch = 32, 16, 4, 2, 8
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "faithfulness_224.json"
    results = json.loads(path.read_text()) if path.exists() else {"archs": {}}
    started = time.perf_counter()
    cfg = WorldConfig(image_size=args.image_size)
    pool = draw(cfg, args.train_images, args.seed, args.workers)
    held = draw(cfg, args.eval_images, EVAL_SEED, args.workers)
    drawn = round(time.perf_counter() - started, 1)
    images = torch.from_numpy(pool["images"]).permute(0, 3, 1, 2).contiguous().to(device)
    labels = torch.from_numpy(pool["labels"])
    raw_all = torch.from_numpy(held["images"]).permute(0, 3, 1, 2).float().div(255)
    single = np.flatnonzero(held["n_categories"] == 1)[: args.explain_images]
    world_mean = torch.from_numpy(held["images"].reshape(-1, 3).mean(0) / 255).float()
    results["setup"] = {
        "image_size": args.image_size,
        "train_images": args.train_images,
        "world_seed": args.seed,
        "eval_world_seed": EVAL_SEED,
        "eval_images": args.eval_images,
        "explained": len(single),
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "device": str(device),
        "torch": torch.__version__,
        "bootstrap": BOOTSTRAP,
        "draw_s": drawn,
        "command": " ".join(sys.argv),
    }
    norm = IMAGENET.apply
    for arch in args.archs:
        if arch in results["archs"]:
            continue
        if results["archs"] and time.perf_counter() - started > args.budget_s:
            print(f"{arch}: skipped, {args.budget_s:.0f} s budget spent", flush=True)
            continue
        t0 = time.perf_counter()
        model = build(arch, len(cfg.categories)).to(device, memory_format=torch.channels_last)
        losses = train(model, images, labels, args, device)
        model.eval()
        t_train = time.perf_counter() - t0
        acc = accuracy(model, norm(raw_all.to(device)), torch.from_numpy(held["labels"]))
        raw = raw_all[single].to(device)
        target = torch.from_numpy(held["labels"][single]).to(device)
        x = norm(raw)
        maps = {}
        for key, method, options in (
            ("agf", "agf", {}),
            ("agf_eps0", "agf", {"residual_eps": 0.0}),
            ("gradcam", "gradcam", {}),
            ("random", "random", {"seed": 0}),
        ):
            maps[key] = torch.cat(
                [
                    explain(model, x[i : i + 16], target[i : i + 16], method=method, **options).cpu()
                    for i in range(0, len(x), 16)
                ]
            )
        maps["mask"] = torch.from_numpy(held["masks"][single] > 0).float()
        found = measure_model(model, raw, norm, held["masks"][single], maps, target, world_mean, seed=0)
        results["archs"][arch] = {
            "accuracy": acc,
            "losses": losses,
            "train_s": round(t_train, 1),
            "total_s": round(time.perf_counter() - t0, 1),
            **found,
        }
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(
            f"{arch}: accuracy {acc}, trained in {t_train:.0f} s, all in {time.perf_counter() - t0:.0f} s", flush=True
        )
    print(f"done in {time.perf_counter() - started:.0f} s -> {path}", flush=True)


if __name__ == "__main__":
    main()
