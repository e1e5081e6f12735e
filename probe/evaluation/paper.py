"""The AGF paper's two ImageNet benchmarks, for any torchvision classifier or pseudo-class probe.

- Positive/negative perturbation on an ImageNet-style validation folder (one sub-folder per
  class): images resized to a square (no crop), maps for the ground-truth or the predicted
  class, pixels blacked out in relevance order, top-1 hits against the ground-truth label at
  each step (as the published script), and the normalised AUC of :mod:`.faithfulness`.
- The ImageNet-segmentation test on Guillaumin et al.'s ``gtsegs_ijcv.mat`` (MATLAB v7.3 =
  HDF5), read as distributed: image resized (bilinear) and mask resized (nearest) to a square,
  map for the top-1 class, binarised by one rule for every method; pixel accuracy and mIoU
  accumulated over the dataset, the real AP of the continuous map, and the papers' binary
  "mAP" (a² + (1 − a)/2), labelled as such.

:func:`benchmark` runs them on a :class:`Classifier`; ``probe paper`` (``probe.commands.paper``, or
``scripts/paper_benchmarks.py``) is the command line, which also loads a ``probe run`` folder's probe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from PIL import Image, UnidentifiedImageError

from backbones.preprocessing import IMAGENET, Normalization
from probe.errors import ParameterError, ProbeValueError
from unsupervised.images import IMAGE_EXTENSIONS

from ._explain import ExplainFn, explainer
from ._tensors import progress
from .faithfulness import STEPS, perturbation_auc, perturbation_hits
from .localization import THRESHOLD_RULES, SegmentationCounts, segmentation_counts

#: Which class the perturbation benchmark explains: the ground-truth label or the model's prediction.
EXPLAIN_CLASSES = ("label", "predicted")


@dataclass
class Classifier:
    """A model mapping normalised images to class logits, and the normalisation it expects."""

    model: nn.Module
    normalization: Normalization
    num_classes: int
    name: str
    labelled: bool = True  # its outputs are the data set's classes (False: pseudo-classes of a probe)


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _last_linear(model: nn.Module) -> str:
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ProbeValueError("the classifier has no Linear layer to read the number of classes from")
    return names[-1]


def load_classifier(name: str, weights: str | Path, device: torch.device) -> Classifier:
    """A torchvision classifier ``name`` with the state dict in ``weights`` (loaded with weights_only=True).

    The number of classes is read from the checkpoint's last Linear layer, so fine-tuned
    heads of any size load.
    """
    import torchvision

    valid = _torchvision_names()
    if name not in valid:
        raise ParameterError("model", f": unknown torchvision classifier {name!r}; valid: {', '.join(valid)}")
    path = Path(weights)
    if not path.is_file():
        raise ParameterError("weights", f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refusals and corrupt files alike
        raise ParameterError("weights", f"{path}: cannot be read as a PyTorch state dict ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ParameterError("weights", f"{path}: expected a state dict, got {type(state).__name__}")
    head = _last_linear(torchvision.models.get_model(name, weights=None)) + ".weight"
    if head not in state:
        raise ParameterError("weights", f"{path}: no key {head!r}; is it a {name} checkpoint?")
    num_classes = int(state[head].shape[0])
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ParameterError(
            "weights", f"{path} does not fit {name}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )
    return Classifier(model.to(device).eval(), IMAGENET, num_classes, name)


def _transform(size: int, normalization: Normalization):
    from torchvision import transforms

    steps = [transforms.Resize((size, size)), transforms.ToTensor()]
    if not normalization.is_raw:
        steps.append(transforms.Normalize(normalization.mean, normalization.std))
    return transforms.Compose(steps)


def read_class_index(path: str | Path) -> dict[str, int]:
    """Folder name -> class index, from a JSON file (``{"0": ["n01440764", "tench"], …}`` or
    ``{"n01440764": 0, …}``) or a text file with one folder name first on each line (line order = index)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParameterError("class_index", f"{path}: {exc.strerror or exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError("class_index", f"{path}: invalid JSON ({exc})") from exc
        if isinstance(data, dict) and all(isinstance(v, list) and v for v in data.values()):
            return {str(v[0]): int(k) for k, v in data.items()}
        if isinstance(data, dict) and all(isinstance(v, int) for v in data.values()):
            return {str(k): int(v) for k, v in data.items()}
        raise ParameterError("class_index", f"{path}: expected {{index: [folder, name]}} or {{folder: index}}")
    names = [line.split()[0] for line in text.splitlines() if line.strip()]
    return {name: i for i, name in enumerate(names)}


class ValFolder(torch.utils.data.Dataset):
    """An ImageFolder-style validation set: ``root/<class folder>/<image>``, sorted, first ``limit`` images.

    ``num_classes=None``: the labels are not used (a pseudo-class probe), folders are just numbered.
    """

    def __init__(
        self,
        root: str | Path,
        class_index: dict[str, int] | None,
        num_classes: int | None,
        transform,
        limit: int | None,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ParameterError("imagenet_val", f"{self.root}: not a folder")
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not folders:
            raise ParameterError("imagenet_val", f"{self.root}: no class sub-folders")
        if class_index is None:
            if num_classes is not None and len(folders) != num_classes:
                raise ParameterError(
                    "imagenet_val",
                    f"{self.root} has {len(folders)} class folders but the model has {num_classes} "
                    "outputs; give a class index to map folders to output indices",
                )
            class_index = {name: i for i, name in enumerate(folders)}
        unknown = [f for f in folders if f not in class_index]
        if unknown:
            raise ParameterError("class_index", f"has no entry for folder(s) {unknown[:5]} of {self.root}")
        self.samples = [
            (p, class_index[folder])
            for folder in folders
            for p in sorted((self.root / folder).iterdir())
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        ][:limit]
        if not self.samples:
            raise ParameterError("imagenet_val", f"{self.root}: no images found")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            with Image.open(path) as im:
                return self.transform(im.convert("RGB")), label, ""
        except (OSError, UnidentifiedImageError) as exc:
            return None, label, f"{path}: {exc}"


def _collate(batch):
    kept = [(x, y) for x, y, _ in batch if x is not None]
    skipped = [why for x, _, why in batch if x is None]
    if not kept:
        return None, None, skipped
    return torch.stack([x for x, _ in kept]), torch.tensor([y for _, y in kept]), skipped


def run_perturbation(
    clf: Classifier,
    folder: str | Path,
    *,
    explain_fn: ExplainFn,
    class_index: dict[str, int] | None = None,
    explain_class: str = "label",
    image_size: int = 224,
    limit: int | None = None,
    batch_size: int = 16,
    device: torch.device = torch.device("cpu"),
) -> dict:
    """Positive and negative perturbation on an ImageNet-style folder.

    A classifier's hits are counted against the labels (as the published script); a pseudo-class
    probe (``clf.labelled`` False) has no labels to match, so its maps explain the predicted
    pseudo-class and a hit means that prediction survives.
    """
    if explain_class not in EXPLAIN_CLASSES:
        raise ParameterError("explain_class", f"must be one of {', '.join(EXPLAIN_CLASSES)}, got {explain_class!r}")
    if not clf.labelled:
        explain_class = "predicted"
    num_classes = clf.num_classes if clf.labelled else None
    data = ValFolder(folder, class_index, num_classes, _transform(image_size, clf.normalization), limit)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=_collate)
    hits: dict[str, list[torch.Tensor]] = {"positive": [], "negative": []}
    skipped: list[str] = []
    for x, labels, bad in progress(loader, desc="perturbation", total=len(loader), unit="batch"):
        skipped += bad
        if x is None:
            continue
        x, labels = x.to(device), labels.to(device)
        if explain_class == "label":
            targets = labels
        else:
            with torch.no_grad():
                targets = clf.model(x).argmax(dim=1)
        maps = explain_fn(clf.model, x, targets)
        hit_target = labels if clf.labelled else targets
        curves = perturbation_hits(
            clf.model, x, maps, hit_target, normalization=clf.normalization, batch_size=batch_size, device=device
        )
        for mode in hits:
            hits[mode].append(curves[mode].hits)
    if not hits["positive"]:
        raise ParameterError("imagenet_val", f"{folder}: no readable image")
    out: dict[str, Any] = {
        "images": int(sum(h.shape[0] for h in hits["positive"])),
        "explained_class": explain_class,
        "hits_against": "label" if clf.labelled else "prediction",
        "fractions": list(STEPS),
        "skipped": skipped,
    }
    for mode, chunks in hits.items():
        survival = torch.cat(chunks).double().mean(dim=0)
        out[mode] = {"accuracy": survival.tolist(), "auc": perturbation_auc(STEPS, survival)}
    out["clean_accuracy"] = out["positive"]["accuracy"][0]
    return out


class GtSegs:
    """Reader of ``gtsegs_ijcv.mat`` as distributed (MATLAB v7.3, i.e. HDF5).

    ``value/img`` and ``value/gt`` are [N, 1] arrays of object references. An image reference
    points at a uint8 array stored column-major as (3, W, H); a gt reference points at a 1×1
    cell whose single reference points at the (W, H) mask. Both are transposed back to (H, W[, 3]).
    """

    def __init__(self, path: str | Path):
        import h5py

        self.path = Path(path)
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as exc:
            raise ParameterError("imagenet_seg", f"{self.path}: not a MATLAB v7.3 (HDF5) file ({exc})") from exc
        missing = [key for key in ("value/img", "value/gt") if key not in self.file]
        if missing:
            found = sorted(self.file.keys())
            self.file.close()
            raise ParameterError("imagenet_seg", f"{self.path}: missing {missing}; top-level keys: {found}")

    def __len__(self) -> int:
        return int(self.file["value/img"].shape[0])

    def image(self, index: int) -> np.ndarray:
        """uint8 ``[H, W, 3]`` (grey images are repeated over 3 channels)."""
        arr = np.asarray(self.file[self.file["value/img"][index, 0]])
        if arr.ndim == 2:
            return np.repeat(arr.T[:, :, None], 3, axis=2).astype(np.uint8)
        return np.ascontiguousarray(arr.transpose(2, 1, 0)).astype(np.uint8)

    def mask(self, index: int) -> np.ndarray:
        """Bool ``[H, W]``: the object pixels (nonzero in the file)."""
        cell = self.file[self.file["value/gt"][index, 0]]
        return np.asarray(self.file[cell[0, 0]]).T != 0

    def close(self) -> None:
        self.file.close()


def _seg_batches(seg: GtSegs, clf: Classifier, image_size: int, limit: int | None, batch_size: int):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    transform = _transform(image_size, clf.normalization)
    count = len(seg) if limit is None else min(limit, len(seg))
    for start in range(0, count, batch_size):
        images, masks = [], []
        for i in range(start, min(start + batch_size, count)):
            images.append(transform(Image.fromarray(seg.image(i))))
            mask = Image.fromarray(seg.mask(i).astype(np.uint8))
            resized = TF.resize(mask, [image_size, image_size], InterpolationMode.NEAREST)
            masks.append(torch.from_numpy(np.array(resized)) != 0)
        yield torch.stack(images), torch.stack(masks)


def run_segmentation(
    clf: Classifier,
    mat_path: str | Path,
    *,
    explain_fn: ExplainFn,
    rule: str = "mean",
    image_size: int = 224,
    limit: int | None = None,
    batch_size: int = 16,
    device: torch.device = torch.device("cpu"),
) -> dict:
    """The ImageNet-segmentation test: maps for the top-1 class scored against the object masks."""
    if rule not in THRESHOLD_RULES:
        raise ParameterError("threshold", f": unknown threshold rule {rule!r}; valid: {', '.join(THRESHOLD_RULES)}")
    seg = GtSegs(mat_path)
    counts = SegmentationCounts()
    try:
        total = -(-min(len(seg), limit or len(seg)) // batch_size)
        batches = _seg_batches(seg, clf, image_size, limit, batch_size)
        for x, masks in progress(batches, desc="segmentation", total=total, unit="batch"):
            x = x.to(device)
            with torch.no_grad():
                top1 = clf.model(x).argmax(dim=1)
            maps = explain_fn(clf.model, x, top1)
            counts = counts + segmentation_counts(maps.detach(), masks.to(maps.device), rule=rule)
    finally:
        seg.close()
    return {"images": counts.images, "explained_class": "predicted", "threshold_rule": rule, **counts.scores()}


def format_table(results: dict) -> str:
    """The printed summary of :func:`main`'s results."""
    lines = [f"model {results['model']} · method {results['method']}"]
    if "perturbation" in results:
        p = results["perturbation"]
        measure = "top-1 accuracy" if p["hits_against"] == "label" else "share of predictions kept"
        lines.append(f"perturbation on {p['images']} images (maps for the {p['explained_class']} class), {measure}:")
        lines.append("  removed   " + " ".join(f"{f:>5.0%}" for f in p["fractions"]))
        for mode in ("positive", "negative"):
            steps = " ".join(f"{a:5.3f}" for a in p[mode]["accuracy"])
            lines.append(f"  {mode:<9} {steps}   AUC {p[mode]['auc']:.4f}")
    if "segmentation" in results:
        s = results["segmentation"]
        fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(f"segmentation on {s['images']} images (binarised at the map's {s['threshold_rule']}):")
        lines.append(
            f"  pixel accuracy {fmt(s['pixel_accuracy'])}  mIoU {fmt(s['miou'])}  "
            f"AP (real, continuous map) {fmt(s['average_precision'])}  "
            f"mAP (papers' binary formula) {fmt(s['paper_binary_map'])}"
        )
    return "\n".join(lines)


def benchmark(
    clf: Classifier,
    *,
    imagenet_val: str | Path | None = None,
    imagenet_seg: str | Path | None = None,
    class_index: dict[str, int] | None = None,
    method: str = "agf",
    explain_class: str = "label",
    threshold: str = "mean",
    image_size: int = 224,
    limit: int | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    explain_fn: ExplainFn | None = None,
) -> dict:
    """The perturbation benchmark on ``imagenet_val`` and/or the segmentation one on ``imagenet_seg``,
    with ``method``'s maps (or ``explain_fn``'s); the results as one JSON-ready dict."""
    if not imagenet_val and not imagenet_seg:
        raise ProbeValueError(
            "nothing to do: neither an ImageNet validation folder (imagenet_val) nor the "
            "ImageNet-segmentation file (imagenet_seg) is given"
        )
    for name, value in (("limit", limit), ("batch_size", batch_size), ("image_size", image_size)):
        if value is not None and value < 1:
            raise ParameterError(name, f"must be >= 1, got {value}")
    if threshold not in THRESHOLD_RULES:  # checked here too: the perturbation benchmark may run for hours first
        valid = ", ".join(THRESHOLD_RULES)
        raise ParameterError("threshold", f": unknown threshold rule {threshold!r}; valid: {valid}")
    common: dict[str, Any] = dict(
        explain_fn=explain_fn or explainer(method),
        image_size=image_size,
        limit=limit,
        batch_size=batch_size,
        device=torch.device(device),
    )
    results: dict = {"model": clf.name, "method": method, "image_size": image_size}
    if imagenet_val:
        results["perturbation"] = run_perturbation(
            clf, imagenet_val, class_index=class_index, explain_class=explain_class, **common
        )
    if imagenet_seg:
        results["segmentation"] = run_segmentation(clf, imagenet_seg, rule=threshold, **common)
    return results
