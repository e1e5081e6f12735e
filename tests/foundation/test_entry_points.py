"""The one loop that imports plugins (probe.entry_points), on a real installed distribution's metadata."""

from __future__ import annotations

import sys

import pytest

from probe.attribution import registry
from probe.entry_points import current_origin, load_entry_points

GROUP = "probe.test_entry_points"


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A distribution "fake-dist" declaring four entry points of GROUP, importable from sys.path."""
    dist_info = tmp_path / "fake_dist-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-dist\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        f"[{GROUP}]\nthing = ep_good:THING\nbroken = ep_broken\nlabels = ep_labels\nrefused = ep_good:REFUSED\n"
    )
    (tmp_path / "ep_good.py").write_text("THING = 'a thing'\nREFUSED = 'refused'\n")
    (tmp_path / "ep_broken.py").write_text("raise ImportError('no such dependency')\n")
    (tmp_path / "ep_labels.py").write_text(
        "from probe.entry_points import current_origin\n"
        "from probe.attribution import Method, register_method\n"
        "SEEN = current_origin()\n"
        "register_method(Method('ep_labelled', lambda call: call.images.sum(1)))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))
    yield
    for name in ("ep_good", "ep_broken", "ep_labels"):
        sys.modules.pop(name, None)


def test_broken_plugins_are_skipped_with_a_warning_and_the_rest_labelled(installed):
    accepted = []

    def accept(plugin):
        if plugin.obj == "refused":
            raise ValueError("not a thing")
        accepted.append((plugin.name, current_origin()))

    with pytest.warns(UserWarning) as caught:
        loaded = load_entry_points(GROUP, "test", accept)
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        "test plugin 'broken' (ep_broken) failed to load: no such dependency",
        "test plugin 'refused' (ep_good:REFUSED) failed to load: not a thing",
    ]
    assert sorted((p.name, p.origin) for p in loaded) == [("labels", "plugin:fake-dist"), ("thing", "plugin:fake-dist")]
    assert sorted(accepted) == [("labels", "plugin:fake-dist"), ("thing", "plugin:fake-dist")]
    assert [p.obj for p in loaded if p.name == "thing"] == ["a thing"]
    assert sys.modules["ep_labels"].SEEN == "plugin:fake-dist" and current_origin() is None
    # a method registered by a plugin's import is labelled with the plugin's distribution
    assert registry.get_method("ep_labelled").origin == "plugin:fake-dist"
