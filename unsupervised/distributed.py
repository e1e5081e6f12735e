"""torch.distributed plumbing: join or start a process group, barriers, broadcasts, and work shared
among the ranks (extraction's batches, the pipeline's explanations and perturbation tests).

Under ``torchrun`` (``WORLD_SIZE > 1``) a group is started with gloo on CPU or nccl on
CUDA unless the caller already started one. It is left open for later calls: tearing a
group down and starting another under torchrun's shared rendezvous store can pick up
the old group's stale addresses. It is closed when the process exits: a process whose gloo
group is still open while the interpreter shuts down can abort ("terminate called without an
active exception"), seen about once in five two-process runs.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .errors import DataError

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Group:
    """This process's place in the (possibly single-process) group."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_true(self, flag: bool) -> bool:
        """True on every rank iff ``flag`` is true on every rank (used so a failing rank stops the others)."""
        if not self.active:
            return flag
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
        value = torch.tensor([1 if flag else 0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item())

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]`` with the items dealt to the ranks in turn (item i to rank
        i mod world size); every rank gets every result, in order.

        The results do not depend on the number of ranks as long as ``fn(item)`` does not. A rank
        that fails stops every rank: it re-raises its error, the others a :class:`DataError`.
        """
        if not self.active:
            return [fn(item) for item in items]
        mine: dict[int, R] = {}
        problem: BaseException | None = None
        try:
            for i in range(self.rank, len(items), self.world_size):
                mine[i] = fn(items[i])
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after telling the other ranks
            problem = exc
        if not self.all_true(problem is None):
            raise problem or DataError("work shared among the ranks failed on another rank; see that rank's log")
        shares: list[dict[int, R]] = [{} for _ in range(self.world_size)]
        dist.all_gather_object(shares, mine)
        merged = {i: result for share in shares for i, result in share.items()}
        return [merged[i] for i in range(len(items))]


def join(device: torch.device) -> Group:
    """The current process group, starting one from torchrun's environment when needed."""
    if dist.is_available() and dist.is_initialized():
        return Group(dist.get_rank(), dist.get_world_size())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or not dist.is_available():
        return Group()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(device if device.index is not None else int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://")
    atexit.register(_close)
    return Group(dist.get_rank(), dist.get_world_size())


def _close() -> None:
    """At exit: the group this module started is destroyed while the interpreter is still whole. No barrier: a
    rank that exits on an error must not wait for the others (torchrun stops them once one has failed)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
