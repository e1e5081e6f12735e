"""``report.html``: one self-contained page (inline CSS, no JavaScript, no external resource).

Figures are referenced as relative ``figures/*.png`` links, so the page opens offline as long
as it stays next to its ``figures/`` folder (copy the whole report directory to share it).
Every string that can come from the user (backbone, file, class and label names, verdict
statements that quote them, settings) goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from probe import __version__
from probe.evaluation.intervals import LEVEL, RESAMPLES, Estimate
from probe.evaluation.localization import POINTING_TOLERANCE
from probe.evaluation.sanity import SANITY_MAX_FINAL_SIMILARITY
from probe.evaluation.verdict import (
    AGREEMENT_MARGIN,
    ENERGY_MARGIN,
    FAITHFULNESS_MARGIN,
    MIN_CLASS_SIZE,
    POINTING_MARGIN,
    Check,
    Comparison,
    Verdict,
)

from .figures import BackboneFigures
from .results import BackboneResults, MethodResults, PseudoClass, RunResults

CSS = """
:root { --ink:#1d2430; --muted:#5b6575; --line:#d9dee7; --bg:#f6f7f9; --yes:#1a7f37; --no:#b42318; --maybe:#a15c00;
  --na:#6b7280; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--ink);
  background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:24px 20px 60px; }
h1 { font-size:26px; margin:0 0 4px; }
h2 { font-size:20px; margin:36px 0 10px; border-bottom:1px solid var(--line); padding-bottom:4px; }
h3 { font-size:16px; margin:18px 0 8px; }
.sub { color:var(--muted); margin:0 0 12px; }
nav a { margin-right:14px; color:#2457c5; text-decoration:none; } nav a:hover { text-decoration:underline; }
.table-wrap { overflow-x:auto; background:#fff; border:1px solid var(--line); border-radius:8px; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { padding:5px 7px; border-bottom:1px solid var(--line); text-align:right; vertical-align:top; }
td { white-space:nowrap; } td.text, th { white-space:normal; overflow-wrap:anywhere; }
th:first-child, td:first-child, td.text, th.text { text-align:left; }
th { background:#eef1f5; font-weight:600; }
.ci { display:block; font-size:11px; color:var(--muted); }
tr.control td { color:var(--muted); font-style:italic; } tr.baseline td { color:var(--muted); background:#fafbfc; }
tr.left-out td { color:var(--muted); text-decoration:line-through; }
td.na { color:#a0a7b4; }
.verdict { background:#fff; border:1px solid var(--line); border-left:6px solid var(--na); border-radius:8px;
  padding:10px 14px; margin:10px 0; }
.verdict.yes { border-left-color:var(--yes); }
.verdict.no { border-left-color:var(--no); }
.verdict.maybe { border-left-color:var(--maybe); }
.verdict h3 { margin:0 0 8px; } .verdict table { font-size:12.5px; }
.verdict details { margin-top:8px; font-size:13px; } .verdict summary { cursor:pointer; color:#2457c5; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff;
  background:var(--na); white-space:nowrap; }
.badge.yes { background:var(--yes); } .badge.no { background:var(--no); } .badge.maybe { background:var(--maybe); }
figure { margin:12px 0; background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px; }
figure img { max-width:100%; height:auto; display:block; image-rendering:pixelated; }
figcaption { color:var(--muted); font-size:13px; margin-top:6px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(min(520px,100%),1fr)); gap:14px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card h3 { margin-top:0; display:flex; justify-content:space-between; align-items:center; }
.card dl { display:grid; grid-template-columns:auto 1fr; gap:2px 12px; margin:6px 0 8px; font-size:13.5px; }
.card dt { color:var(--muted); } .card dd { margin:0; }
.card p.statement { font-size:13px; color:var(--ink); margin:6px 0 0; }
ul.skipped { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 30px; font-size:13.5px; }
.defs dt { font-weight:600; margin-top:8px; } .defs dd { margin:2px 0 0 18px; color:#333; }
footer { color:var(--muted); font-size:12.5px; margin-top:40px; }
"""

#: CSS class of each outcome: a verdict's (semantic, ...) and a test's or comparison's (passes, ...).
OUTCOME_CLASS = {
    "semantic": "yes",
    "not semantic": "no",
    "inconclusive": "maybe",
    "not judged": "na",
    "passes": "yes",
    "fails": "no",
    None: "na",
}


def esc(value: object) -> str:
    """HTML-escape any value's text (quotes included, so it is safe in attributes too)."""
    return html.escape(str(value), quote=True)


def _interval(e: Estimate, digits: int = 2) -> str:
    if not e.has_interval:
        return '<span class="ci" title="too few values for an interval">[–]</span>'
    return f'<span class="ci">[{e.low:.{digits}f}, {e.high:.{digits}f}]</span>'


def _num(value: Estimate | None, digits: int = 2) -> str:
    """A table cell: the value, and its 95 % interval below it."""
    if value is None:
        return '<td class="na" title="not measured (needs labels or masks, or not run)">–</td>'
    return f"<td>{value.value:.{digits}f}{_interval(value, digits)}</td>"


def _row(cells: Iterable[str], css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f"<tr{cls}>{''.join(cells)}</tr>"


def _text(value: object) -> str:
    return f'<td class="text">{esc(value)}</td>' if value is not None else '<td class="text na">–</td>'


def _badge(outcome: str | None) -> str:
    """A coloured label: a verdict's outcome (semantic, not semantic, inconclusive, not judged) or a test's."""
    return f'<span class="badge {OUTCOME_CLASS.get(outcome, "na")}">{esc(outcome or "not judged")}</span>'


def _img(src: str, alt: str) -> str:
    return f'<img src="{esc(src)}" alt="{esc(alt)}" loading="eager">'


SIDE_BY_SIDE_LINK = '<a href="#side-by-side">Side by side</a>'


def _header(results: RunResults) -> str:
    settings = "".join(f"<tr>{_text(k)}{_text(v)}</tr>" for k, v in results.settings.items())
    settings_table = f'<div class="table-wrap"><table>{settings}</table></div>' if settings else ""
    return (
        "<header><h1>ssl-probe report</h1>"
        f'<p class="sub">Data: <strong>{esc(results.dataset or "(unnamed)")}</strong> · {results.num_images} images'
        f" · {len(results.skipped)} skipped · explained with "
        f"{', '.join(f'<strong>{esc(m)}</strong>' for m in results.primary_methods)}</p>"
        '<nav><a href="#summary">Summary</a><a href="#figures">Figures</a>'
        f"{SIDE_BY_SIDE_LINK if results.side_by_side else ''}"
        '<a href="#classes">Pseudo-classes</a>'
        '<a href="#specificity">Class specificity</a><a href="#skipped">Skipped images</a>'
        '<a href="#definitions">Definitions</a></nav>'
        f"{settings_table}</header>"
    )


def _comparison_row(test: str, c: Comparison, css: str = "") -> str:
    difference = "–" if c.difference is None else c.difference.format()
    cells = [
        test,
        f'<td class="text">{esc(c.figure)}</td>',
        _num(c.value),
        f'<td class="text">{esc(c.baseline)}</td>',
        _num(c.baseline_value),
        f"<td>{esc(difference)} ≥ {c.margin:.2f}</td>",
        f'<td class="text">{_badge(c.outcome) if css != "left-out" else "left out"}</td>',
    ]
    return _row(cells, css)


def _check_rows(check: Check, counted: bool) -> list[str]:
    """One row per comparison of a test; the first carries the test's name and outcome."""
    note = ""
    if not counted and check.comparisons:
        note = '<span class="ci">not counted: the maps are not shown faithful</span>'
    head = (
        f'<td class="text" rowspan="{{span}}"><strong>{esc(check.word)}</strong><br>{_badge(check.outcome)}{note}</td>'
    )
    if not check.comparisons:
        return [
            _row(
                [head.format(span=1), f'<td class="text na" colspan="6">not judged: {esc(_NOT_JUDGED[check.key])}</td>']
            )
        ]
    rows = [(c, "") for c in check.comparisons] + [(c, "left-out") for c in check.left_out]
    return [_comparison_row(head.format(span=len(rows)) if i == 0 else "", c, css) for i, (c, css) in enumerate(rows)]


_NOT_JUDGED = {
    "agreement": "no labels, or no control",
    "localisation": "no masks, or no control",
    "faithfulness": "not measured",
}
_VERDICT_HEAD = (
    '<tr><th class="text">test</th><th class="text">figure</th><th>value [95 % interval]</th>'
    '<th class="text">baseline</th><th>baseline value</th><th>difference ≥ minimum</th>'
    '<th class="text">outcome</th></tr>'
)


def _verdict_table(v: Verdict) -> str:
    """The verdict at a glance: each test's comparisons with their intervals and outcomes."""
    if not v.checks:
        return ""
    rows = [r for check in v.checks for r in _check_rows(check, v.objects_counted or check.key != "localisation")]
    return f'<div class="table-wrap"><table>{_VERDICT_HEAD}{"".join(rows)}</table></div>'


def _verdict_box(b: BackboneResults, v: Verdict) -> str:
    role = " (positive control)" if b.role == "positive control" else ""
    return (
        f'<div class="verdict {OUTCOME_CLASS[v.outcome]}"><h3>{esc(b.name)}{esc(role)} {_badge(v.outcome)}</h3>'
        f"{_verdict_table(v)}<details><summary>The verdict in words</summary><p>{esc(v.statement)}</p>"
        "</details></div>"
    )


def _summary(results: RunResults) -> str:
    verdicts = results.verdicts
    boxes = "".join(_verdict_box(b, verdicts[b.name].backbone) for b in results.backbones if b.judged)
    head = "".join(
        f'<th class="{c}">{esc(t)}</th>' if c else f"<th>{esc(t)}</th>"
        for t, c in (
            ("backbone", "text"),
            ("role", "text"),
            ("format", "text"),
            ("arch", "text"),
            ("k", ""),
            ("NMI", ""),
            ("ARI", ""),
            ("accuracy", ""),
            ("purity", ""),
            ("verdict", "text"),
        )
    )
    rows = []
    for b in results.backbones:
        c = b.clustering
        rows.append(
            _row(
                [
                    _text(b.name),
                    _text(b.role),
                    _text(b.format),
                    _text(b.arch),
                    f"<td>{int(c.k)}</td>",
                    _num(c.nmi),
                    _num(c.ari),
                    _num(c.accuracy),
                    _num(c.purity),
                    f'<td class="text">{_badge(verdicts[b.name].backbone.outcome) if b.judged else "reference"}</td>',
                ],
                "control" if not b.judged else "",
            )
        )
    clustering = (
        f'<h3>Clustering</h3><div class="table-wrap"><table><tr>{head}</tr>{"".join(rows)}</table></div>'
        '<p class="sub">Intervals: 95 %, over both the k-means seed and the images.</p>'
    )
    return (
        f'<section id="summary"><h2>Summary</h2>{boxes}{clustering}{_faithfulness_table(results)}'
        f"{_localisation_table(results)}</section>"
    )


FAITHFULNESS_COLUMNS = (
    ("pos. AUC ↓", "positive_perturbation_auc"),
    ("neg. AUC ↑", "negative_perturbation_auc"),
    ("gap ↑", "faithfulness_gap"),
)
LOCALISATION_COLUMNS = (
    ("pointing ↑", "pointing_game"),
    ("mask energy ↑", "mask_energy"),
    ("mIoU ↑", "miou"),
    ("pixel acc. ↑", "pixel_accuracy"),
    ("AP ↑", "average_precision"),
)


def _sanity_final(m: MethodResults) -> Estimate | None:
    return m.sanity.similarity[-1] if m.sanity and m.sanity.similarity else None


def _method_table(
    title: str,
    results: RunResults,
    columns: tuple[tuple[str, str], ...],
    extra: tuple[str, ...],
    baseline: bool,
    note: str,
) -> str:
    """A table with a row per (backbone, method): ``columns`` of each method's figures, then ``extra`` columns."""
    head = (
        '<th class="text">backbone</th><th class="text">method</th>'
        + "".join(f"<th>{esc(t)}</th>" for t, _ in columns)
        + "".join(f"<th>{esc(t)}</th>" for t in extra)
    )
    rows = []
    for b in results.backbones:
        for name, m in b.methods.items():
            cells = [_text(b.name), _text(name)] + [_num(getattr(m, attr)) for _, attr in columns]
            if extra:
                cells.append(_num(_sanity_final(m)))
            rows.append(_row(cells, "control" if not b.judged else ""))
        if baseline and (b.centre_pointing_game is not None or b.mask_fraction is not None):
            cells = [
                _text(b.name),
                _text("baseline: centre point / mask area"),
                _num(b.centre_pointing_game),
                _num(b.mask_fraction),
            ] + ['<td class="na">–</td>'] * (len(columns) - 2)
            rows.append(_row(cells, "baseline"))
    return (
        f"<h3>{esc(title)}</h3>"
        f'<div class="table-wrap"><table><tr>{head}</tr>{"".join(rows)}</table></div><p class="sub">{note}</p>'
    )


def _undefined_note(results: RunResults) -> str:
    words = {
        "pointing_game": "image(s) whose map is constant (no maximum), left out of the pointing game",
        "mask_energy": "image(s) whose map has no positive relevance, left out of the mask energy",
    }
    parts = [
        f"{esc(name)} on {esc(b.name)}: {count} {words[key]}"
        for b in results.backbones
        for name, m in b.methods.items()
        for key, count in m.undefined.items()
        if count
    ]
    return (" Undefined and left out: " + "; ".join(parts) + ".") if parts else " No map was undefined."


def _faithfulness_table(results: RunResults) -> str:
    return _method_table(
        "Faithfulness",
        results,
        FAITHFULNESS_COLUMNS,
        ("sanity final ↓",),
        False,
        "Perturbation with removed pixels blurred; ↓ lower is better, ↑ higher is better. The gap is judged against "
        "a random pixel order (gap 0); the random-init control's gap (italic rows) is shown for reference, gaps of "
        "different models are not comparable.",
    )


def _localisation_table(results: RunResults) -> str:
    return _method_table(
        "Localisation",
        results,
        LOCALISATION_COLUMNS,
        (),
        True,
        "Italic rows: the random-init control of the same architecture; grey rows: what pointing at the image "
        "centre, or spreading relevance uniformly, would score." + _undefined_note(results),
    )


def _figure(src: str | None, alt: str, caption: str) -> str:
    if src is None:
        return ""
    return f"<figure>{_img(src, alt)}<figcaption>{caption}</figcaption></figure>"


def _figures(results: RunResults, figures: dict[str, BackboneFigures]) -> str:
    parts = []
    for b in results.backbones:
        if not b.judged:
            continue
        f = figures[b.name]
        parts.append(f"<h3>{esc(b.name)}</h3>")
        parts.append(
            _figure(
                f.overview,
                f"overview of {b.name}",
                "The verdict's figures with their 95 % intervals: this backbone against the random-init "
                "control and the data-only baselines (centre point, mask area; a random pixel order's "
                "gap is 0).",
            )
        )
        parts.append(
            _figure(
                f.perturbation,
                f"perturbation curves of {b.name}",
                "Share of images whose pseudo-class prediction survives as pixels are blurred out, most "
                "relevant first (left) or least relevant first (right); bands: 95 % intervals. Grey "
                "dashed: the random-init control.",
            )
        )
        parts.append(
            _figure(
                f.bars,
                f"metric bars of {b.name}",
                "Each metric per method with its 95 % interval; hatched: the random-init control; "
                "dotted: the centre-point / mask-area baselines.",
            )
        )
        parts.append(
            _figure(
                f.sanity,
                f"sanity curves of {b.name}",
                "Cascading randomisation from the top layer down: similarity of the maps to the original "
                "ones must fall (the test passes below "
                f"{SANITY_MAX_FINAL_SIMILARITY:.2f} once every layer is random); bands: 95 % intervals.",
            )
        )
    body = "".join(parts) or '<p class="sub">No figure was drawn.</p>'
    return f'<section id="figures"><h2>Figures</h2>{body}</section>'


def _side_by_side(results: RunResults, src: str | None) -> str:
    """The same images explained by every probed backbone, one row each (runs with several backbones)."""
    side = results.side_by_side
    if side is None or src is None:
        return ""
    images = ", ".join(
        esc(name) + (f" ({esc(label)})" if label is not None else "") for name, label in zip(side.names, side.labels)
    )
    rows = "; ".join(
        f"row {i + 2}: {esc(row.backbone)} ({esc(row.method)}, pseudo-classes "
        f"{', '.join(str(int(c)) for c in row.classes)})"
        for i, row in enumerate(side.rows)
    )
    caption = (
        f"The same images, left to right: {images}. Row 1: the images; {rows}. Each backbone explains its own "
        "top-1 pseudo-class of each image with its primary method (red positive, blue negative)."
    )
    return (
        f'<section id="side-by-side"><h2>Side by side</h2>'
        f"{_figure(src, 'the same images explained by every probed backbone', caption)}</section>"
    )


def _fact(name: str, value: str) -> str:
    return f"<dt>{esc(name)}</dt><dd>{value}</dd>"


def _fmt(value: Estimate | float | None) -> str:
    if value is None:
        return "–"
    return value.format() if isinstance(value, Estimate) else f"{value:.2f}"


def _card(anchor: str, pc: PseudoClass, verdict: Verdict, strip: str | None, method: str, has_control: bool) -> str:
    facts = [
        _fact("size", f"{int(pc.size)} images"),
        _fact("majority label", esc(pc.majority_label) if pc.majority_label is not None else "– (no labels)"),
        _fact("purity", _fmt(pc.purity)),
        _fact("pointing game", f"{_fmt(pc.pointing_game)} (centre point {_fmt(pc.centre_pointing_game)})"),
        _fact("mask energy", f"{_fmt(pc.mask_energy)} (mask area {_fmt(pc.mask_fraction)})"),
        _fact(
            "perturbation AUC",
            f"positive {_fmt(pc.positive_perturbation_auc)} · negative {_fmt(pc.negative_perturbation_auc)}",
        ),
        _fact("perturbation gap", _fmt(pc.faithfulness_gap)),
    ]
    picture = ""
    if strip is not None:
        names = ", ".join(esc(m.name) + (f" ({esc(m.label)})" if m.label is not None else "") for m in pc.members)
        bottom = "; bottom: the random-init control's map" if has_control else ""
        rows = f"top: image; middle: {esc(method)} map{bottom}"
        picture = (
            f"<figure>{_img(strip, f'most central members of pseudo-class {pc.id}')}"
            f"<figcaption>Most central members, left to right: {names}. {rows} (red positive, blue negative)."
            "</figcaption></figure>"
        )
    return (
        f'<article class="card" id="{anchor}"><h3>Pseudo-class {int(pc.id)} {_badge(verdict.outcome)}</h3>'
        f'<dl>{"".join(facts)}</dl>{picture}<p class="statement">{esc(verdict.statement)}</p></article>'
    )


def _classes(results: RunResults, figures: dict[str, BackboneFigures]) -> str:
    verdicts = results.verdicts
    parts = []
    for i, b in enumerate(results.backbones):
        if not b.judged:
            continue
        has_control = any(m.control_map is not None for pc in b.pseudo_classes for m in pc.members)
        cards = "".join(
            _card(f"b{i}-pc{int(pc.id)}", pc, v, figures[b.name].classes.get(pc.id), b.method, has_control)
            for pc, v in zip(b.pseudo_classes, verdicts[b.name].pseudo_classes)
        )
        parts.append(f'<h3>{esc(b.name)}</h3><div class="cards">{cards}</div>')
    return f'<section id="classes"><h2>Pseudo-classes</h2>{"".join(parts)}</section>'


def _specificity_rows(b: BackboneResults) -> list[str]:
    css = "control" if not b.judged else ""
    return [
        _row(
            [
                _text(b.name),
                _text(name),
                _num(m.specificity.pointing_explained),
                _num(m.specificity.pointing_other),
                _num(m.specificity.pearson),
                _num(m.specificity.spearman),
                f"<td>{int(m.specificity.images)}</td>",
            ],
            css,
        )
        for name, m in b.methods.items()
        if m.specificity is not None
    ]


def _specificity(results: RunResults, figures: dict[str, BackboneFigures]) -> str:
    parts = []
    for b in results.backbones:
        if not b.judged:
            continue
        control = results.control_of(b)
        rows = _specificity_rows(b) + (_specificity_rows(control) if control is not None else [])
        examples = "".join(
            f"<figure>{_img(src, f'class-specificity example {ex.name}')}<figcaption>{esc(ex.name)}: "
            f"image; map for {esc(ex.labels[0])} (pseudo-class {int(ex.classes[0])}); "
            f"map for {esc(ex.labels[1])} (pseudo-class {int(ex.classes[1])}); correlation {_fmt(ex.pearson)}."
            "</figcaption></figure>"
            for ex, src in zip(b.specificity_examples, figures[b.name].specificity)
        )
        if not rows and not examples:
            continue
        table = (
            (
                '<div class="table-wrap"><table><tr><th class="text">backbone</th><th class="text">method</th>'
                "<th>pointing on explained object ↑</th><th>pointing on the other object ↓</th><th>Pearson ↓</th>"
                f"<th>Spearman ↓</th><th>images</th></tr>{''.join(rows)}</table></div>"
            )
            if rows
            else ""
        )
        parts.append(f"<h3>{esc(b.name)}</h3>{table}{examples}")
    body = "".join(parts) or '<p class="sub">Not measured: the data has no images with two labelled objects.</p>'
    return f'<section id="specificity"><h2>Class specificity</h2>{body}</section>'


def _skipped(results: RunResults) -> str:
    if not results.skipped:
        return '<section id="skipped"><h2>Skipped images</h2><p class="sub">None: every image was read.</p></section>'
    items = "".join(f"<li><code>{esc(s.path)}</code>: {esc(s.reason)}</li>" for s in results.skipped)
    return (
        f'<section id="skipped"><h2>Skipped images ({len(results.skipped)})</h2><ul class="skipped">{items}</ul>'
        "</section>"
    )


def _definitions() -> str:
    items = (
        (
            "95 % intervals",
            f"Every figure is shown with the percentile interval of {RESAMPLES} bootstrap resamples "
            f"({LEVEL:.0%}), seeded: resampling the evaluated images within each pseudo-class for the per-image "
            "figures, and both the k-means seed (five clusterings) and the images for NMI, ARI, accuracy and purity.",
        ),
        (
            "Perturbation AUC",
            "Pixels are replaced by a Gaussian blur of the image (σ = 3/64 of its side) 10 %, 20 %, "
            "…, 90 % at a time, most relevant first (positive) or least relevant first (negative), ranked by the "
            "signed map; the curve is the share of images still predicted as their pseudo-class; AUC = trapezoid "
            "over 0 %…90 % (clean image included) divided by 0.9. The gap is negative minus positive AUC.",
        ),
        (
            "Pointing game",
            f"Hit when the map's maximum lies closer than {POINTING_TOLERANCE} px to an object pixel "
            "(TorchRay's protocol); a constant map has no maximum and is left out. The centre-point baseline always "
            "points at the image centre.",
        ),
        (
            "Mask energy",
            "Share of the map's positive relevance inside the object mask; a uniform map scores the mask's area share.",
        ),
        (
            "mIoU, pixel accuracy, AP",
            "Map binarised at its own mean per image; IoU of object and background "
            "accumulated over all pixels, averaged over the two; AP ranks the pixels by the continuous map.",
        ),
        (
            "Sanity",
            "Layers are randomised from the top down; the Spearman similarity of the maps to the original ones "
            "must fall.",
        ),
        (
            "Class specificity",
            "Two-object images explained for each object's pseudo-class: each map should point at "
            "its own object, and the two maps should differ (low correlation).",
        ),
        (
            "Verdict",
            "Each test compares figures with baselines by the 95 % interval of their difference: it passes "
            "when the interval lies wholly at or above the minimum effect, fails when it lies wholly below, and is "
            f"inconclusive otherwise. Labels: purity (NMI for a backbone) against the random-init control, minimum "
            f"{AGREEMENT_MARGIN:.2f}. Objects: the pointing game against the control and the centre point (minimum "
            f"{POINTING_MARGIN:.2f}; left out when a baseline is above {1 - POINTING_MARGIN:.2f}) and the mask energy "
            f"against the control and the mask area (minimum {ENERGY_MARGIN:.2f}). Faithfulness: the perturbation gap "
            f"against a random pixel order's 0 (minimum {FAITHFULNESS_MARGIN:.2f}). Object evidence only counts with "
            "faithful maps. Semantic: labels or objects pass and none fails; not semantic: one fails; inconclusive or "
            f"not judged otherwise, and always for pseudo-classes with fewer than {MIN_CLASS_SIZE} members.",
        ),
    )
    body = "".join(f"<dt>{esc(t)}</dt><dd>{esc(d)}</dd>" for t, d in items)
    return f'<section id="definitions"><h2>Definitions</h2><dl class="defs">{body}</dl></section>'


def _footer(results: RunResults) -> str:
    timings = " · ".join(f"{esc(stage)} {seconds:.1f} s" for stage, seconds in results.timings.items())
    timing = f" · {timings}" if timings else ""
    return f"<footer>ssl-probe {esc(__version__)}{timing} · metrics in metrics.json</footer>"


def render_html(results: RunResults, figures: dict[str, BackboneFigures], side_by_side: str | None = None) -> str:
    """The whole page as a string (``side_by_side``: the path of the side-by-side figure, if drawn)."""
    body = "".join(
        (
            _header(results),
            _summary(results),
            _figures(results, figures),
            _side_by_side(results, side_by_side),
            _classes(results, figures),
            _specificity(results, figures),
            _skipped(results),
            _definitions(),
            _footer(results),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>ssl-probe report: {esc(results.dataset or 'run')}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
