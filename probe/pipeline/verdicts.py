"""Judge every backbone and pseudo-class of a run once, with the semantic-evidence rule
(``probe.evaluation.verdict``); the verdicts are stored in ``RunResults.verdicts`` for the report
and the terminal summary."""

from __future__ import annotations

from probe.evaluation.intervals import Estimate
from probe.evaluation.verdict import NOT_JUDGED, Evidence, Verdict, judge
from probe.report import BackboneResults, BackboneVerdicts, MethodResults, PseudoClass, RunResults

CONTROL_STATEMENT = "Random-init control: the baseline every figure of its backbone is compared with."


def _evidence(
    agreement: tuple[str, Estimate | None, Estimate | None],
    figures: BackboneResults | PseudoClass,
    method_figures: MethodResults | PseudoClass,
    control: BackboneResults | None,
    method: str,
    size: int | None = None,
) -> Evidence:
    """Evidence from (agreement name, value, control value), the baselines' holder, the primary method's figures."""
    name, value, control_value = agreement
    c = control.methods.get(method) if control is not None else None
    return Evidence(
        agreement=value,
        agreement_control=control_value,
        agreement_name=name,
        pointing=method_figures.pointing_game,
        pointing_control=c.pointing_game if c else None,
        pointing_centre=figures.centre_pointing_game,
        energy=method_figures.mask_energy,
        energy_control=c.mask_energy if c else None,
        energy_uniform=figures.mask_fraction,
        faithfulness_gap=method_figures.faithfulness_gap,
        faithfulness_gap_control=c.faithfulness_gap if c else None,
        method=method,
        size=size,
    )


def backbone_evidence(backbone: BackboneResults, control: BackboneResults | None, method: str) -> Evidence:
    """Evidence for a whole backbone: NMI, the primary method's backbone-level figures, vs the control."""
    agreement = ("NMI", backbone.clustering.nmi, control.clustering.nmi if control else None)
    return _evidence(agreement, backbone, backbone.methods[method], control, method)


def class_evidence(pc: PseudoClass, control: BackboneResults | None, method: str) -> Evidence:
    """Evidence for one pseudo-class: its purity and figures vs the control's backbone-level ones."""
    agreement = ("purity", pc.purity, control.clustering.purity if control else None)
    return _evidence(agreement, pc, pc, control, method, size=pc.size)


def _control_verdict() -> Verdict:
    return Verdict(None, NOT_JUDGED, (), False, CONTROL_STATEMENT)


def judge_run(results: RunResults) -> dict[str, BackboneVerdicts]:
    """Verdicts for every backbone by name; controls get a fixed statement and ``semantic = None``."""
    verdicts = {}
    for b in results.backbones:
        if not b.judged:
            verdicts[b.name] = BackboneVerdicts(_control_verdict(), [_control_verdict() for _ in b.pseudo_classes])
            continue
        control = results.control_of(b)
        verdicts[b.name] = BackboneVerdicts(
            judge(backbone_evidence(b, control, b.method), f"Backbone {b.name}"),
            [judge(class_evidence(pc, control, b.method), f"Pseudo-class {pc.id}") for pc in b.pseudo_classes],
        )
    return verdicts
