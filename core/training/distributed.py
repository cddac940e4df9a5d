"""Data parallel training across processes (several GPUs, or CPU processes with gloo).

The worker is launched once per process by ``torch.distributed.run`` (see
:func:`core.training.process.worker_command`); each process reads its rank from the
environment. Every process builds the same step (the same rows, in the same order),
takes its share of the rows, and the gradients of the trainable weights are summed
across processes before the optimizer step — so a step is the same computation as in
one process, and the loss matches it up to the order of float additions. Only rank 0
emits events, writes checkpoints and exports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class Group:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started: bool = False

    @classmethod
    def from_env(cls) -> Group:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        return cls(
            rank=int(os.environ.get("RANK", "0") or 0),
            world=world,
            local_rank=int(os.environ.get("LOCAL_RANK", "0") or 0),
        )

    @property
    def main(self) -> bool:
        return self.rank == 0

    def start(self, device: str) -> None:
        if self.world <= 1 or self.started:
            return
        import torch
        import torch.distributed as dist

        if device == "cuda":
            torch.cuda.set_device(self.local_rank)
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
        self.started = True

    def share(self, items: list[Any]) -> list[Any]:
        """This process's share of a step's rows."""
        return items[self.rank :: self.world] if self.world > 1 else items

    def broadcast(self, params: list[Any]) -> None:
        """Every process starts from rank 0's weights."""
        if not self.started:
            return
        import torch.distributed as dist

        for p in params:
            dist.broadcast(p.data, src=0)

    def sum_gradients(self, params: list[Any]) -> None:
        if not self.started:
            return
        import torch
        import torch.distributed as dist

        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)

    def sum(self, values: list[float]) -> list[float]:
        if not self.started:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t.tolist()]

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision (stop or go on), the same in every process."""
        if not self.started:
            return flag
        import torch
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int64)
        dist.broadcast(t, src=0)
        return bool(t.item())

    def close(self) -> None:
        if self.started:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.started = False
