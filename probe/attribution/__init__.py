"""Attribution maps for CNN classifiers: AGF (exact, fast, on unmodified models) and baselines.

``explain(model, images, target=None, method="agf")`` -> [N, H, W]; see docs/ATTRIBUTION.md.
"""

from .api import METHODS, OPTIONS, explain, input_relevance
from .composite import conv_rules
from .display import normalize_map
from .graph import UnsupportedModelError

__all__ = ["METHODS", "OPTIONS", "UnsupportedModelError", "conv_rules", "explain", "input_relevance", "normalize_map"]
