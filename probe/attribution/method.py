"""What an attribution method is: its name, options, how it inspects a model and how it runs.

A method is a :class:`Method` value; :mod:`probe.attribution.registry` holds them by name and
``explain`` looks them up there (Captum's one ``attribute`` verb over many method classes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from probe.errors import ProbeTypeError


@dataclass(frozen=True)
class ModelFacts:
    """What a method learned about a model before any computation (its structural checks passed).

    ``num_classes``: the number of class scores, or ``None`` when only a forward pass can tell
    (``explain`` then runs one). ``in_channels``/``first_layer``: the image channels the model
    expects and the layer that says so, when known. ``structure``: whatever the method family
    found and its ``run`` reuses (the traced graph for the propagation methods).
    """

    num_classes: int | None = None
    in_channels: int | None = None
    first_layer: str = ""
    structure: Any = None


@dataclass(frozen=True)
class Option:
    """One keyword option of a method: its name, its default, and an optional check.

    ``check(value)`` returns the value to use (possibly converted) or raises a ProbeError
    naming the option.
    """

    name: str
    default: Any = None
    check: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class MethodCall:
    """Everything a method's ``run`` receives from ``explain``.

    ``images``: [N, C, H, W], detached, contiguous, on the model's device, in the caller's dtype.
    ``target``: [N] int64 class ids on that device; ``None`` when the method does not need a
    class, or when it resolves the class itself (``Method.resolves_rank``): then it explains each
    image's ``rank``-th highest class (0 = top-1) of its own forward pass.
    ``options``: every option of the method, checked, defaults filled in.
    """

    model: nn.Module
    images: torch.Tensor
    target: torch.Tensor | None
    rank: int
    options: Mapping[str, Any]
    facts: ModelFacts

    def given_target(self) -> torch.Tensor:
        """``target``, for a method that needs one and does not resolve the rank itself (``explain`` sets it then)."""
        if self.target is None:
            raise RuntimeError("this method needs class targets; explain() passes them when needs_target is set")
        return self.target


def no_inspection(model: nn.Module) -> ModelFacts:
    """The inspection of a method that runs the model as it is: no structural requirement."""
    return ModelFacts()


@dataclass(frozen=True)
class Method:
    """An attribution method as ``explain`` sees it.

    ``run(call) -> [N, H, W]`` (any float dtype, any device; ``explain`` converts). ``inspect(model)``
    does the structural checks before any work, raising a ProbeError (e.g.
    ``UnsupportedModelError``) naming what is missing; it must not run the model.
    ``needs_target``: False for a map that ignores the class (targets are still validated).
    ``resolves_rank``: True when ``run`` picks the top-``rank`` class itself from a forward it
    does anyway; otherwise ``explain`` resolves it with one forward pass in inference mode.
    """

    name: str
    run: Callable[[MethodCall], torch.Tensor]
    options: tuple[Option, ...] = ()
    needs_target: bool = True
    resolves_rank: bool = False
    inspect: Callable[[nn.Module], ModelFacts] = no_inspection
    description: str = ""
    origin: str = field(default="", compare=False)  # "builtin", "user:<module>" or "plugin:<distribution>"

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every option's value: the given ones checked, the others at their default."""
        unknown = sorted(set(given) - set(self.option_names))
        if unknown:
            valid = ", ".join(self.option_names) or "none"
            raise ProbeTypeError(
                f"method {self.name!r} got unknown option(s) {', '.join(unknown)}; its options: {valid}"
            )
        resolved = {}
        for option in self.options:
            value = given.get(option.name, option.default)
            if option.name in given and option.check is not None:
                value = option.check(value)
            resolved[option.name] = value
        return resolved
