"""Data-parallel training across processes started by ``torchrun`` or ``accelerate launch``.

Every helper is the identity in a single process, so the training loop reads the same either
way. Processes find each other through the launcher's environment variables (``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); CPUs talk over gloo, GPUs over
NCCL.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist


def setup() -> tuple[int, int]:
    """Join the launcher's process group, once; returns (rank, world size).

    With ``WORLD_SIZE`` above 1 and no default process group yet, one is started from the
    launcher's variables: NCCL when CUDA is available (each process on ``cuda:LOCAL_RANK``),
    else gloo. A single process (no launcher) starts nothing and gets (0, 1).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return rank(), world()


def shutdown() -> None:
    """Leave the process group, if one was started."""
    if dist.is_initialized():
        dist.destroy_process_group()


def world() -> int:
    """Processes taking part (1 without a process group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    """This process's number, 0 to ``world() - 1``."""
    return dist.get_rank() if dist.is_initialized() else 0


def local_rank() -> int:
    """This process's number on its machine: the GPU it uses."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Whether this process writes files and reports progress (rank 0)."""
    return rank() == 0


def device() -> torch.device:
    """Where this process computes: its own GPU when there is CUDA, else the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over every process, in place; returns it."""
    if world() > 1:
        if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
            summed = tensor.to(device())
            dist.all_reduce(summed)
            tensor.copy_(summed)
        else:
            dist.all_reduce(tensor)
    return tensor


def all_reduce_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Sum the gradients of ``parameters`` over every process, in one message.

    A process whose share of the batch was empty has no gradients yet; it adds zeros.
    """
    if world() == 1:
        return
    parameters = list(parameters)
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = all_reduce_sum(torch.cat([p.grad.reshape(-1) for p in parameters]))
    for p, summed in zip(parameters, flat.split([p.numel() for p in parameters])):
        p.grad.copy_(summed.view_as(p))


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process (it must pickle); ``obj`` itself in a single process."""
    if world() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait until every process gets here."""
    if world() > 1:
        dist.barrier()
