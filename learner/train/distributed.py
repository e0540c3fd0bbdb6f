"""Training in several processes (CPUs with gloo, GPUs with NCCL, one machine or several) with fastai's
distributed support on Hugging Face Accelerate, and the GPU-only speed-ups (mixed precision, channels_last).

A launcher starts one process per device and sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR:
`accelerate launch -m jobs.train ...` or `torchrun --nproc_per_node N -m jobs.train ...`. Every process
decodes nothing twice (the first process fills the signal store, the others wait and read it), trains on
its share of each batch, and takes part in gathering the validation predictions; only the first process
writes the model directory, the history and checkpoints.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

log = logging.getLogger(__name__)
T = TypeVar("T")
PRECISIONS = ("fp32", "fp16", "bf16")


def world_size() -> int:
    """Processes in this run (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_world_size() -> int:
    """Processes of this run on this machine (they share its memory)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """The process that decodes first and writes the model directory."""
    return rank() == 0


def init_distributed() -> None:
    """Join the launcher's process group now (NCCL on GPUs, gloo on CPUs), so data preparation can already
    wait for the first process; Accelerate later finds the group and uses it."""
    if world_size() <= 1 or torch.distributed.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    log.info("process %d of %d (%s)", rank(), world_size(), torch.distributed.get_backend())


def main_first(fn: Callable[[], T]) -> T:
    """`fn()` in the first process, then in the others (which then find its results on disk)."""
    if world_size() <= 1:
        return fn()
    init_distributed()
    if is_main_process():
        result = fn()
        torch.distributed.barrier()
    else:
        torch.distributed.barrier()
        result = fn()
    return result


def check_precision(precision: str, channels_last: bool) -> None:
    """Mixed precision needs a GPU: on a CPU it is an error named here, not a silent fp32 run."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision}: expected one of {', '.join(PRECISIONS)}")
    if precision != "fp32" and not torch.cuda.is_available():
        raise ValueError(f"precision={precision} needs a CUDA GPU (none found); train in fp32 on a CPU")
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("precision=bf16: this GPU has no bfloat16 support; use fp16")
    if channels_last and not torch.cuda.is_available():
        log.info("channels_last is a GPU memory layout: ignored on the CPU")


def _trainer_class():
    """fastai's DistributedTrainer with a data loader that also works on CPUs: fastai broadcasts the
    shuffled order through a CUDA tensor, which gloo on a CPU cannot use."""
    from fastai.distributed import DistributedDL, DistributedTrainer

    class CpuSafeDistributedDL(DistributedDL):
        def _broadcast(self, t, rank):
            if torch.cuda.is_available():
                return super()._broadcast(t, rank)
            t = torch.LongTensor(t)
            torch.distributed.broadcast(t, rank)
            return t.tolist()

        def wif(self):  # the workers' hook is on the wrapped loader (reseeding the random crops)
            self.dl.wif()

    class Trainer(DistributedTrainer):
        def _wrap_dl(self, dl):
            if isinstance(dl, DistributedDL):
                return dl
            return CpuSafeDistributedDL(dl, device=next(self.learn.model.parameters()).device)

    return Trainer


@contextmanager
def accelerated(learn: Any, precision: str = "fp32", channels_last: bool = False) -> Iterator[Any]:
    """The learner set up for this process: mixed precision and channels_last on a GPU, and, under a
    launcher, DistributedDataParallel with each batch split over the processes. Validation predictions
    (`get_preds`) inside the block are gathered from every process, so metrics cover the whole set."""
    check_precision(precision, channels_last)
    if precision == "fp16":
        learn.to_fp16()
    elif precision == "bf16":
        learn.to_bf16()
    if channels_last and torch.cuda.is_available():
        learn.model.to(memory_format=torch.channels_last)
    if world_size() <= 1:
        yield learn
        return
    try:
        import accelerate  # noqa: F401
    except ImportError as e:
        raise RuntimeError(
            "training in several processes needs Hugging Face Accelerate: pip install accelerate"
        ) from e
    from fastai.callback.progress import ProgressCallback

    init_distributed()
    cuda = torch.cuda.is_available()
    trainer = _trainer_class()(sync_bn=cuda, cpu=not cuda)  # SyncBatchNorm is GPU-only
    learn.add_cb(trainer)
    if not is_main_process():
        learn.remove_cb(ProgressCallback)
    try:
        yield learn
    finally:
        learn.remove_cb(trainer)
