"""Attribution maps for classifiers: AGF (exact, fast, on unmodified CNNs) and baselines, by name
through one verb, with a registry that plugins extend.

``explain(model, images, target=None, method="agf")`` -> [N, H, W]; see docs/ATTRIBUTION.md.
"""

from .api import Support, explain, supports
from .composite import conv_rules
from .display import normalize_map
from .graph import UnsupportedModelError
from .inputs import inference_mode, ranked_targets
from .method import Method, MethodCall, ModelFacts, Option
from .registry import METHODS, available_methods, get_method, register_method, unregister_method
from .relevance import input_relevance

__all__ = [
    "METHODS",
    "Method",
    "MethodCall",
    "ModelFacts",
    "Option",
    "Support",
    "UnsupportedModelError",
    "available_methods",
    "conv_rules",
    "explain",
    "get_method",
    "inference_mode",
    "input_relevance",
    "normalize_map",
    "ranked_targets",
    "register_method",
    "supports",
    "unregister_method",
]
