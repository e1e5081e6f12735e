"""What the explain and evaluate stages of one backbone will compute, and about how long it will take.

Printed before the stages start, from a measured forward pass (seconds per image) and the cost of
each part in forward passes per image: one map of each method (:data:`MAP_COST`, measured on a
ResNet-18 at 224 px on a CPU, docs/BENCHMARKS.md "Cost model"), 18 perturbed forward passes per
image and method, the cards' and the sanity test's maps. The same figures drive the stage's
progress bar, so its ETA starts from the estimate and follows the work done.
"""

from __future__ import annotations

from dataclasses import dataclass

from probe.evaluation import STEPS
from probe.evaluation.sanity import SANITY_MAX_STEPS

from .options import ProbeOptions

#: Forward passes of the model that one map costs, per image (a forward pass and a backward sweep or more).
MAP_COST = {"agf": 7.0, "lrp": 7.0, "gradcam": 1.0, "saliency": 2.0, "input_x_gradient": 2.0, "random": 0.0}
#: The cost of a method not in the table: a forward and a backward pass.
DEFAULT_MAP_COST = 3.0
#: Perturbed images classified per image and method: 9 steps of positive and of negative perturbation.
PERTURBATION_COST = 2 * (len(STEPS) - 1)


def map_cost(method: str, options: ProbeOptions) -> float:
    """Forward passes per image of one ``method`` map with the run's options for it."""
    if method == "integrated_gradients":  # a forward and a backward pass per step
        return 2.0 * float(options.options_of(method).get("n_steps", 50))
    return MAP_COST.get(method, DEFAULT_MAP_COST)


@dataclass(frozen=True)
class Plan:
    """The work of stages explain and evaluate for one backbone, in forward passes of its model."""

    name: str
    methods: tuple[str, ...]
    cap: int  # images in the evaluation subset: the most that can be evaluated
    first: int  # images of the first round: the fewest
    precision: float
    per_image: float  # forward passes per evaluated image: its clean pass, every map, every perturbation
    card_forwards: float  # the cards' maps (and the control's maps of the card images)
    sanity_forwards: float  # the sanity test's maps
    card_images: int
    sanity_images: int
    seconds_per_forward: float

    def forwards(self, images: int) -> float:
        """Forward passes when ``images`` images are evaluated."""
        return images * self.per_image + self.card_forwards + self.sanity_forwards

    def describe(self) -> str:
        """One paragraph: what will be computed and how long it should take."""
        methods = ", ".join(self.methods)
        if self.precision > 0 and self.first < self.cap:
            images = (
                f"{self.first} to {self.cap} images (rounds of {self.first} until the {self.methods[0]} "
                f"faithfulness gap is known within ±{self.precision:g})"
            )
        else:
            images = f"{self.cap} images"
        extras = []
        if self.card_images:
            extras.append(f"{self.card_images} card images")
        if self.sanity_images:
            extras.append(f"the sanity test on {self.sanity_images} images")
        low, high = (self.forwards(n) * self.seconds_per_forward for n in (min(self.first, self.cap), self.cap))
        span = _duration(high) if _duration(low) == _duration(high) else f"{_duration(low)} to {_duration(high)}"
        return (
            f"explain + evaluate {self.name}: {images} with {methods}"
            + (f"; {', '.join(extras)}" if extras else "")
            + f": about {span} ({self.seconds_per_forward * 1000:.0f} ms per forward pass, measured). "
            "--eval-images and --eval-precision trade precision for time."
        )


def thread_advice(load: float, cores: int, threads: int) -> str:
    """A sentence advising ``--threads 1`` when the machine is busier than its cores and torch uses
    several threads (spinning threads on shared cores slow explanations several times); else ``""``."""
    if threads > 1 and load >= cores:
        return (
            f" The machine is busy (load {load:.1f} on {cores} cores): --threads 1 is often several times faster here."
        )
    return ""


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds / 10) * 10 if seconds >= 10 else round(seconds))} s"
    return f"{round(seconds / 60)} min"


def plan(
    name: str,
    methods: tuple[str, ...],
    options: ProbeOptions,
    *,
    cap: int,
    first: int,
    card_images: int,
    control_cards: bool,
    sanity_images: int,
    seconds_per_forward: float,
) -> Plan:
    """The plan of one backbone's explain and evaluate stages (``control_cards``: the cards also show the
    control's map of each card image, one more map and a clean pass on the control)."""
    per_image = 1.0 + sum(map_cost(m, options) + PERTURBATION_COST for m in methods)
    primary = map_cost(options.primary, options)
    cards = card_images * (primary + (primary + 1.0 if control_cards else 0.0))
    sanity = min(sanity_images, cap)
    return Plan(
        name,
        methods,
        cap,
        first,
        options.eval_precision,
        per_image,
        cards,
        sanity * (SANITY_MAX_STEPS + 1) * primary,
        card_images,
        sanity,
        seconds_per_forward,
    )
