"""torch.distributed plumbing for extraction: join or start a process group, barriers, broadcasts.

Under ``torchrun`` (``WORLD_SIZE > 1``) a group is started with gloo on CPU or nccl on
CUDA unless the caller already started one. It is left open for later calls: tearing a
group down and starting another under torchrun's shared rendezvous store can pick up
the old group's stale addresses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


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
    return Group(dist.get_rank(), dist.get_world_size())
