"""Metrics that turn attribution maps into evidence: faithfulness, localisation, class
specificity, sanity, and the semantic-evidence verdict. Definitions: ``docs/EVALUATION.md``."""

from ._explain import ExplainFn, explain_in_batches, explainer
from ._tensors import average_ranks, nanmean, pearson_rows, per_class_mean, spearman_rows
from .faithfulness import (
    REMOVALS,
    STEPS,
    FaithfulnessResult,
    PerturbationCurve,
    blurred,
    faithfulness,
    perturbation_auc,
    perturbation_hits,
    removal_masks,
    removal_ranks,
)
from .localization import (
    POINTING_TOLERANCE,
    SegmentationCounts,
    average_precision,
    binarize,
    centre_pointing_game,
    mask_energy,
    mask_fraction,
    paper_binary_map,
    pointing_game,
    segmentation_counts,
)
from .precision import mean_halfwidth, precise_enough
from .sanity import SANITY_MAX_FINAL_SIMILARITY, SanityResult, cascading_randomization, parameter_layers
from .specificity import SpecificityResult, TwoObjectPairs, class_specificity, two_object_pairs
from .summary import MapEvaluation, evaluate_maps
from .verdict import (
    AGREEMENT_MARGIN,
    ENERGY_MARGIN,
    FAITHFULNESS_MARGIN,
    MIN_CLASS_SIZE,
    POINTING_MARGIN,
    Evidence,
    Verdict,
    judge,
)

__all__ = [
    "AGREEMENT_MARGIN",
    "ENERGY_MARGIN",
    "FAITHFULNESS_MARGIN",
    "MIN_CLASS_SIZE",
    "POINTING_MARGIN",
    "POINTING_TOLERANCE",
    "SANITY_MAX_FINAL_SIMILARITY",
    "STEPS",
    "Evidence",
    "ExplainFn",
    "FaithfulnessResult",
    "MapEvaluation",
    "PerturbationCurve",
    "SanityResult",
    "SegmentationCounts",
    "REMOVALS",
    "SpecificityResult",
    "TwoObjectPairs",
    "Verdict",
    "average_precision",
    "average_ranks",
    "binarize",
    "blurred",
    "cascading_randomization",
    "centre_pointing_game",
    "class_specificity",
    "evaluate_maps",
    "explain_in_batches",
    "explainer",
    "faithfulness",
    "judge",
    "mask_energy",
    "mask_fraction",
    "mean_halfwidth",
    "nanmean",
    "paper_binary_map",
    "parameter_layers",
    "pearson_rows",
    "per_class_mean",
    "perturbation_auc",
    "perturbation_hits",
    "pointing_game",
    "precise_enough",
    "removal_masks",
    "removal_ranks",
    "segmentation_counts",
    "spearman_rows",
    "two_object_pairs",
]
