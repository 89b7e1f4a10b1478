"""One sweep over several processes (GPUs, or CPU processes), launched by accelerate or torchrun.

    accelerate launch --multi_gpu --num_processes 4 experiments/entropy_analysis.py --out runs/x
    accelerate launch --multi_gpu --num_processes 2 --main_process_port 29533 \\
        experiments/entropy_analysis.py --model tiny --device cpu --batch-size 8   # CPU-only box
    python -m torch.distributed.run --nproc_per_node 2 experiments/entropy_analysis.py ...

The launcher sets WORLD_SIZE, RANK and LOCAL_RANK. The units are cut into the same fixed batches
as in one process, and batch i goes to process i % world_size, on cuda:LOCAL_RANK. Each process
appends its records to OUT/records.rank{r}.jsonl (flushed line by line, resumable like
records.jsonl); when all are done, rank 0 merges records.jsonl and the shards in canonical unit
order into one records.jsonl (confidence_trap/runner/runs.py: shard_path, done_keys, merge), removes the
shards and writes run.json and the report. So with the
same --batch-size the merged file is byte for byte the file one process writes, provided every
process computes alike: same device type, and on CPU the same thread count (the launchers set
OMP_NUM_THREADS=1; CPU matmuls round differently with other thread counts).

(`accelerate launch --cpu --num_processes 2` starts one process unless an MPI hostfile is given:
on one CPU-only machine use --multi_gpu as above, which runs torchrun's processes on the CPU.)

Without WORLD_SIZE (a plain `python experiments/entropy_analysis.py`) this is one process of
one: records go straight to records.jsonl and neither torch.distributed nor accelerate is used.
The processes talk through a gloo process group: once to agree on the batch size, and in two
barriers (after rank 0 has prepared --out, and before it merges).
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

WAIT = datetime.timedelta(days=2)  # the final barrier waits for the slowest process's share


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, batch_index: int) -> bool:
        return batch_index % self.size == self.rank


def world() -> World:
    """This process's place, from the launcher's environment (one of one when not launched)."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def device_for(w: World, device: str | None) -> str | None:
    """cuda -> cuda:LOCAL_RANK when launched; `accelerate launch --cpu` means cpu."""
    if device is None and os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return "cpu"
    if w.size == 1:
        return device
    import torch

    if device in (None, "cuda") and torch.cuda.is_available():
        return f"cuda:{w.local_rank % torch.cuda.device_count()}"
    return device


def start(w: World) -> None:
    if w.size > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=WAIT)


def barrier(w: World) -> None:
    if w.size > 1:
        import torch.distributed as dist

        dist.barrier()


def agree_min(w: World, value: int) -> int:
    """The smallest `value` over all processes (each may have measured a different GPU)."""
    if w.size == 1:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.long)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def stop(w: World) -> None:
    if w.size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
