"""Stage extract: one backbone's features of every image, in that backbone's own preprocessing
(batched, cached and resumable: ``unsupervised.extract_features``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import backbones
from probe.errors import ParameterError
from unsupervised import Features, ImageFolderData, extract_features

from .images import with_transform
from .options import ProbeOptions
from .stages import StageClock


@dataclass
class Extracted:
    """The extract stage's output for one backbone."""

    data: ImageFolderData  # a view of the dataset whose items follow this backbone's preprocessing
    features: Features
    rows: np.ndarray  # dataset index of each feature row (images that failed to decode have none)


def extract(
    name: str,
    backbone: backbones.Backbone,
    data: ImageFolderData,
    options: ProbeOptions,
    *,
    cache_dir: Path | None,
    clock: StageClock,
) -> Extracted:
    """Features of ``data`` under ``backbone``; at least ``options.k`` images must have decoded."""
    view = with_transform(data, backbone.preprocess)
    with clock("extract", name):
        features = extract_features(
            backbone,
            view,
            batch_size=options.batch_size,
            num_workers=options.num_workers,
            cache_dir=cache_dir,
            device=options.device,
        )
    if options.k > len(features):
        raise ParameterError(
            "k", f"{options.k} is larger than the number of usable images ({len(features)}) in {data.root}"
        )
    index = {path: i for i, path in enumerate(view.paths)}
    rows = np.array([index[p] for p in features.paths], dtype=np.int64)
    return Extracted(view, features, rows)
