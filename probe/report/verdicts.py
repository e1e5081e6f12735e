"""Apply the semantic-evidence rule (``probe.evaluation.verdict``) to every backbone and pseudo-class."""

from __future__ import annotations

from dataclasses import dataclass

from probe.evaluation.verdict import Evidence, Verdict, judge

from .results import BackboneResults, PseudoClass, RunResults

CONTROL_STATEMENT = "Random-init control: the baseline every figure of its backbone is compared with."


@dataclass(frozen=True)
class BackboneVerdicts:
    """The verdict of a backbone and of each of its pseudo-classes (same order as ``pseudo_classes``)."""

    backbone: Verdict
    pseudo_classes: list[Verdict]


def _control_figures(control: BackboneResults | None, method: str) -> dict:
    if control is None:
        return {"pointing_control": None, "energy_control": None, "faithfulness_gap_control": None}
    m = control.methods.get(method)
    return {
        "pointing_control": m.pointing_game if m else None,
        "energy_control": m.mask_energy if m else None,
        "faithfulness_gap_control": m.faithfulness_gap if m else None,
    }


def backbone_evidence(backbone: BackboneResults, control: BackboneResults | None, method: str) -> Evidence:
    """Evidence for a whole backbone: NMI, the primary method's backbone-level figures, vs the control."""
    m = backbone.methods[method]
    return Evidence(
        agreement=backbone.clustering.nmi,
        agreement_control=control.clustering.nmi if control else None,
        agreement_name="NMI",
        pointing=m.pointing_game,
        pointing_centre=backbone.centre_pointing_game,
        energy=m.mask_energy,
        energy_uniform=backbone.mask_fraction,
        faithfulness_gap=m.faithfulness_gap,
        method=method,
        **_control_figures(control, method),
    )


def class_evidence(pc: PseudoClass, control: BackboneResults | None, method: str) -> Evidence:
    """Evidence for one pseudo-class: its purity and figures vs the control's backbone-level ones."""
    return Evidence(
        agreement=pc.purity,
        agreement_control=control.clustering.purity if control else None,
        agreement_name="purity",
        pointing=pc.pointing_game,
        pointing_centre=pc.centre_pointing_game,
        energy=pc.mask_energy,
        energy_uniform=pc.mask_fraction,
        faithfulness_gap=pc.faithfulness_gap,
        method=method,
        **_control_figures(control, method),
    )


def _control_verdict() -> Verdict:
    return Verdict(None, None, None, None, CONTROL_STATEMENT)


def assess(results: RunResults) -> dict[str, BackboneVerdicts]:
    """Verdicts for every backbone by name; controls get a fixed statement and ``semantic = None``."""
    verdicts = {}
    for b in results.backbones:
        if b.role == "control":
            verdicts[b.name] = BackboneVerdicts(_control_verdict(), [_control_verdict() for _ in b.pseudo_classes])
            continue
        control = results.control_of(b)
        verdicts[b.name] = BackboneVerdicts(
            judge(backbone_evidence(b, control, results.method), f"Backbone {b.name}"),
            [judge(class_evidence(pc, control, results.method), f"Pseudo-class {pc.id}") for pc in b.pseudo_classes],
        )
    return verdicts
