"""report.html escaping and offline-ness, the figures, and the atomicity of write_report."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

import probe.report as report_pkg
from probe.errors import ProbeValueError
from probe.report import write_report
from probe.report.figures import overlay
from tests.support.results import HOSTILE_BACKBONE, HOSTILE_FILE, HOSTILE_LABEL, HOSTILE_SKIP, make_results


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(path) -> _Collect:
    parser = _Collect()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_user_strings_are_text_not_markup(tmp_path):
    page = write_report(tmp_path, make_results())
    source = page.read_text(encoding="utf-8")
    parsed = _parse(page)
    tags = {tag for tag, _ in parsed.tags}
    assert "script" not in tags and "b" not in tags and "u" not in tags and "i" not in tags
    text = "".join(parsed.text)
    for hostile in (HOSTILE_BACKBONE, HOSTILE_LABEL, HOSTILE_FILE, HOSTILE_SKIP):
        assert hostile in text  # shown verbatim, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in source
    assert "<img src=x" not in source
    imgs = [attrs for tag, attrs in parsed.tags if tag == "img"]
    assert all(attrs["src"].startswith("figures/") and attrs["src"].endswith(".png") for attrs in imgs)
    assert len(imgs) == 4 + 2 + 1  # overview, perturbation, bars, sanity; two class strips; one specificity example


def test_page_is_self_contained(tmp_path):
    page = write_report(tmp_path, make_results())
    parsed = _parse(page)
    for tag, attrs in parsed.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is None:
                continue
            assert not re.match(r"^[a-z]+:", value), f"external reference {value!r} in <{tag}>"
            if name == "src":
                assert (tmp_path / value).is_file()
    assert "link" not in {tag for tag, _ in parsed.tags}


def test_figures_are_real_pngs(tmp_path):
    write_report(tmp_path, make_results())
    pngs = sorted((tmp_path / "figures").glob("*.png"))
    assert [p.name for p in pngs] == [
        "b0_class0.png",
        "b0_class1.png",
        "b0_metrics.png",
        "b0_overview.png",
        "b0_perturbation.png",
        "b0_sanity.png",
        "b0_specificity0.png",
    ]
    for p in pngs:
        with Image.open(p) as im:
            im.load()
            assert im.width > 100 and im.height > 100
            assert np.asarray(im.convert("L")).std() > 1  # not blank


def test_class_strip_has_a_control_row_only_when_control_maps_exist(tmp_path):
    write_report(tmp_path / "with", make_results(control_maps=True))
    write_report(tmp_path / "without", make_results(control_maps=False))
    with Image.open(tmp_path / "with/figures/b0_class0.png") as a:
        with Image.open(tmp_path / "without/figures/b0_class0.png") as b:
            assert a.height > b.height and a.width == b.width


def test_report_without_masks_or_labels_still_renders(tmp_path):
    page = write_report(tmp_path, make_results(labels=False, masks=False))
    text = "".join(_parse(page).text)
    assert "not enough evidence to judge" in text
    assert "Not measured: the data has no images with two labelled objects." in text
    assert not (tmp_path / "figures/b0_specificity0.png").exists()


def test_overlay_is_centred_at_zero_with_the_image_underneath():
    image = np.full((4, 4, 3), 0.5, dtype=np.float32)
    rel = np.zeros((4, 4), dtype=np.float32)
    rel[0, 0], rel[3, 3] = 1.0, -1.0
    out = overlay(image, rel).astype(int)
    assert tuple(out[1, 1]) == (128, 128, 128)  # zero relevance: the image unchanged
    r, g, b = out[0, 0]
    assert r > g + 40 and r > b + 40  # positive: red
    r, g, b = out[3, 3]
    assert b > r + 40 and b > g + 20  # negative: blue
    small = overlay(image, np.ones((2, 2), dtype=np.float32))  # maps are resized to the image
    assert small.shape == (4, 4, 3)


def test_failure_mid_write_leaves_no_report(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(report_pkg, "render_html", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_report(tmp_path, make_results())
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no report.html, no staging left behind


def test_failure_keeps_an_earlier_report_whole(tmp_path, monkeypatch):
    write_report(tmp_path, make_results())
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    results = make_results()
    results.backbones[0].pseudo_classes[1].members[0].map = np.zeros((3,), dtype=np.float32)  # breaks a class strip
    with pytest.raises(Exception, match="relevance map must be"):
        write_report(tmp_path, results)
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def test_rewrite_replaces_old_figures(tmp_path):
    write_report(tmp_path, make_results())
    (tmp_path / "figures" / "stale.png").write_bytes(b"old")
    write_report(tmp_path, make_results(masks=False))
    names = {p.name for p in (tmp_path / "figures").iterdir()}
    assert "stale.png" not in names and "b0_specificity0.png" not in names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_strip_tiles_are_enlarged_or_shrunk_to_a_readable_size(tmp_path):
    from probe.report.figures import TILE, TILE_MAX, _fit

    assert _fit(np.zeros((32, 32, 3), np.uint8)).shape == (128, 128, 3)  # 32 px x4, pixels kept crisp
    assert _fit(np.zeros((224, 300, 3), np.uint8)).shape == (round(224 * TILE_MAX / 300), TILE_MAX, 3)
    assert _fit(np.zeros((150, 150, 3), np.uint8)).shape == (150, 150, 3)
    assert TILE <= TILE_MAX


def test_side_by_side_figure_and_its_caption(tmp_path):
    results = make_results(side_by_side=True)
    page = write_report(tmp_path, results)
    parsed = _parse(page)
    section = page.read_text(encoding="utf-8").split('<section id="side-by-side">')[1].split("</section>")[0]
    assert 'href="#side-by-side"' in page.read_text(encoding="utf-8")
    assert "&lt;img src=x" in section and "&lt;script&gt;" in section and "pseudo-classes 0, 1" in section
    assert [a["src"] for t, a in parsed.tags if t == "img"].count("figures/side_by_side.png") == 1
    with Image.open(tmp_path / "figures" / "side_by_side.png") as im:
        width, height = im.size
    tile = 128  # 32-px images are enlarged to 128-px tiles with 4-px gaps: 2 columns, 2 rows (images, one backbone)
    assert (width, height) == (2 * tile + 4, 2 * tile + 4)
    results.side_by_side.rows[0].backbone = "random-init control"
    with pytest.raises(ProbeValueError, match="side-by-side row 'random-init control' must be a probed backbone"):
        write_report(tmp_path / "again", results)
