"""The attribution methods ``explain`` knows, by name: the built-in ones, those registered with
:func:`register_method`, and those of installed plugins (the ``probe.methods`` entry-point group).

Adding a built-in method: define its :class:`~probe.attribution.method.Method` in its own module
and add it to ``BUILTIN`` below (the order is the order of :data:`METHODS`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import overload

from probe.entry_points import Plugin, current_origin, load_entry_points
from probe.errors import ProbeTypeError, ProbeValueError

from . import baselines, relevance
from .method import Method
from .transformer import methods as vit

ENTRY_POINT_GROUP = "probe.methods"

BUILTIN: tuple[Method, ...] = (
    relevance.AGF,
    baselines.GRADCAM,
    baselines.INTEGRATED_GRADIENTS,
    baselines.SALIENCY,
    baselines.INPUT_X_GRADIENT,
    relevance.LRP,
    baselines.RANDOM,
    vit.TRANSFORMER_ATTRIBUTION,
    vit.GENERIC_ATTENTION,
    vit.ATTENTION_ROLLOUT,
    vit.RAW_ATTENTION,
)

_METHODS: dict[str, Method] = {m.name: replace(m, origin="builtin") for m in BUILTIN}
_plugins_loaded = False


def register_method(method: Method, *, replace_existing: bool = False) -> Method:
    """Make ``method`` available to ``explain`` and ``probe run --method`` under ``method.name``.

    Its origin becomes ``plugin:<distribution>`` while a plugin loads, else the one it names or
    ``user:<module of its run>``. Registering a taken name raises unless ``replace_existing``
    (built-in names can never be replaced).
    """
    if not isinstance(method, Method):
        raise ProbeTypeError(f"register_method expects a probe.attribution.Method, got {type(method).__name__}")
    if not method.name.isidentifier():
        raise ProbeValueError(f"attribution method name {method.name!r} must be an identifier (letters, digits, _)")
    taken = _METHODS.get(method.name)
    if taken is not None and (taken.origin == "builtin" or not replace_existing):
        raise ProbeValueError(f"attribution method {method.name!r} is already registered ({taken.origin})")
    origin = current_origin() or method.origin or f"user:{getattr(method.run, '__module__', None) or 'unknown'}"
    if origin != method.origin:
        method = replace(method, origin=origin)
    _METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a method registered with :func:`register_method` (built-in ones stay)."""
    if name in _METHODS and _METHODS[name].origin != "builtin":
        del _METHODS[name]


def load_plugins() -> list[str]:
    """Load every ``probe.methods`` entry point once; return the names found.

    An entry point names a :class:`Method` (registered as it is) or a module whose import
    registers its methods. Whatever a plugin adds is labelled ``plugin:<distribution>``; a plugin
    that fails to load is reported as a warning and skipped.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True
    return [plugin.name for plugin in load_entry_points(ENTRY_POINT_GROUP, "attribution", _register_plugin)]


def _register_plugin(plugin: Plugin) -> None:
    """Register the entry point's object if it is a :class:`Method` its import did not register already."""
    if isinstance(plugin.obj, Method) and _METHODS.get(plugin.obj.name) != plugin.obj:
        register_method(plugin.obj)


def get_method(name: str) -> Method:
    """The method called ``name``; the error lists the known names."""
    load_plugins()
    method = _METHODS.get(name) if isinstance(name, str) else None
    if method is None:
        raise ProbeValueError(f"unknown attribution method {name!r}; choose one of {', '.join(_METHODS)}")
    return method


def available_methods() -> tuple[Method, ...]:
    """Every known method, built-in ones first (in the order of :data:`METHODS`), then registered ones."""
    load_plugins()
    return tuple(_METHODS.values())


class MethodNames(Sequence[str]):
    """The names of every known method, read from the registry on each use (so plugins show up)."""

    def _names(self) -> tuple[str, ...]:
        return tuple(m.name for m in available_methods())

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index):
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __repr__(self) -> str:
        return repr(self._names())


#: The names of the known methods: "agf", "gradcam", "integrated_gradients", "saliency",
#: "input_x_gradient", "lrp", "random", "transformer_attribution", "generic_attention",
#: "attention_rollout", "raw_attention", then any registered or plugin methods.
METHODS = MethodNames()
