"""A third-party attribution method, as a module and as an installed distribution declaring it
under the ``probe.methods`` entry point (shared by the attribution and pipeline tests)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The plugin's module: one method, the gradient of the target logit, in absolute value, summed
# over channels, times a "scale" option.
PLUGIN_MODULE = '''
"""A third-party package adding an attribution method."""
import torch
from probe.errors import ProbeValueError
from probe.attribution import Method, Option, inference_mode


def _scale(value):
    if not isinstance(value, (int, float)) or value <= 0:
        raise ProbeValueError(f"scale must be a positive number, got {value!r}")
    return float(value)


def gradient_magnitude(call):
    """|d logit_target / d pixel| summed over channels, times the scale option."""
    x = call.images.detach().to(next(call.model.parameters()).dtype).requires_grad_(True)
    with inference_mode(call.model), torch.enable_grad():
        logits = call.model(x)
        (grad,) = torch.autograd.grad(logits.gather(1, call.target[:, None]).sum(), x)
    return grad.abs().sum(1) * call.options["scale"]


GRADIENT_MAGNITUDE = Method("plugin_gradient", gradient_magnitude, options=(Option("scale", 1.0, _scale),),
                            description="a plugin's gradient magnitude")
'''


def write_plugin_distribution(site: Path) -> dict[str, str]:
    """A distribution whose metadata declares a ``probe.methods`` entry point; the environment that sees it."""
    dist_info = site / "fake_method_plugin-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-method-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[probe.methods]\nplugin_gradient = fake_method_plugin:GRADIENT_MAGNITUDE\n"
    )
    (site / "fake_method_plugin.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), OMP_NUM_THREADS="1")
