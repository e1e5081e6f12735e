"""Figures of the faithfulness experiments for docs/EVALUATION.md (small PNGs).

    PYTHONPATH=. python scripts/faithfulness_figures.py --puzzle DIR/puzzle.json \
        [--at224 DIR/faithfulness_224.json] --out docs/figures

Reads what scripts/faithfulness_puzzle.py and scripts/faithfulness_224.py wrote and draws:
``faithfulness_curves.png`` (positive and negative perturbation curves of AGF, Grad-CAM and a random order,
black and blur removal, per model) and ``faithfulness_gaps.png`` (the gap of each setting with its 95 %
bootstrap interval, per model).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FRACTIONS = [i / 10 for i in range(10)]
CURVES = (
    ("agf", "signed", "AGF", "C3"),
    ("gradcam", "signed", "Grad-CAM", "C0"),
    ("random", "signed", "random order", "0.5"),
)
FILLS = ("black", "blur")
GAPS = (
    ("agf", "signed", "black", "AGF"),
    ("agf", "positive_random", "black", "AGF positive part"),
    ("agf", "smoothed", "black", "AGF smoothed"),
    ("agf_eps0", "signed", "black", "AGF eps 0"),
    ("gradcam", "signed", "black", "Grad-CAM"),
    ("mask", "positive_random", "black", "object mask"),
    ("agf", "signed", "mean", "AGF, mean fill"),
    ("gradcam", "signed", "mean", "Grad-CAM, mean fill"),
    ("agf", "signed", "blur", "AGF, blur fill"),
    ("gradcam", "signed", "blur", "Grad-CAM, blur fill"),
)


def _row(model: dict, key: str, order: str, fill: str) -> dict | None:
    return next((r for r in model["rows"] if (r["map"], r["order"], r["removal"]) == (key, order, fill)), None)


def models_of(puzzle: dict, at224: dict | None) -> dict[str, dict]:
    models = {f"{name} (64 px)": m for name, m in puzzle["backbones"].items()}
    if at224:
        models.update({f"{arch} (224 px)": m for arch, m in at224["archs"].items()})
    return models


def curves(models: dict[str, dict], out: Path) -> None:
    fig, axes = plt.subplots(
        len(FILLS), len(models), figsize=(1.9 * len(models), 4.0), sharex=True, sharey=True, dpi=80, squeeze=False
    )
    for i, fill in enumerate(FILLS):
        for ax, (name, model) in zip(axes[i], models.items()):
            for key, order, label, colour in CURVES:
                row = _row(model, key, order, fill)
                if row is None:
                    continue
                ax.plot(FRACTIONS, row["negative_curve"], color=colour, label=label)
                ax.plot(FRACTIONS, row["positive_curve"], color=colour, linestyle="--")
            ax.set_title(f"{name}, {fill} fill", fontsize=7)
            ax.tick_params(labelsize=6)
        axes[i][0].set_ylabel("prediction kept", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("fraction removed", fontsize=7)
    axes[0][0].legend(fontsize=5, loc="lower left", title="solid: negative\ndashed: positive", title_fontsize=5)
    fig.tight_layout()
    fig.savefig(out / "faithfulness_curves.png")
    plt.close(fig)


def gaps(models: dict[str, dict], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 3.0), dpi=80)
    width = 0.8 / len(models)
    for i, (name, model) in enumerate(models.items()):
        xs, ys, errs = [], [], [[], []]
        for j, (key, order, fill, _) in enumerate(GAPS):
            row = _row(model, key, order, fill)
            if row is None:
                continue
            mean, lo, hi = row["gap"]
            xs.append(j + (i - (len(models) - 1) / 2) * width)
            ys.append(mean)
            errs[0].append(mean - lo)
            errs[1].append(hi - mean)
        ax.bar(xs, ys, width=width, yerr=errs, label=name, capsize=1, error_kw={"elinewidth": 0.6})
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xticks(range(len(GAPS)), [g[3] for g in GAPS], rotation=35, ha="right", fontsize=6)
    ax.set_ylabel("gap = neg. AUC - pos. AUC", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "faithfulness_gaps.png")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--puzzle", required=True)
    p.add_argument("--at224")
    p.add_argument("--out", default="docs/figures")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    puzzle = json.loads(Path(args.puzzle).read_text())
    at224 = json.loads(Path(args.at224).read_text()) if args.at224 else None
    models = models_of(puzzle, at224)
    curves(models, out)
    gaps(models, out)


if __name__ == "__main__":
    main()
