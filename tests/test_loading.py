"""Loading for large sets: DataLoader workers draw fresh random crops per worker and per epoch, the
thread setting is made before torch loads, and GPU-only options fail clearly on a CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_workers_draw_different_random_numbers_per_worker_and_per_epoch():
    from fastai.data.core import TfmdDL
    from fasttransform import Transform

    from learner.train.loading import loader_options

    class Draw(Transform):  # stands for CropPad / WaveAugment: its own generator, seeded once
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(0)

        def encodes(self, x: int) -> float:
            return float(self.rng.random())

    dl = TfmdDL(
        list(range(8)), after_item=[Draw()], bs=2, create_batch=lambda b: np.array(b), **loader_options(2)
    )
    epochs = [np.concatenate([np.asarray(b) for b in dl]) for _ in range(2)]
    drawn = np.concatenate(epochs)
    assert drawn.size == 16 and len(set(drawn.tolist())) == 16, epochs  # no repeats across workers or epochs


def test_loader_workers_default_to_none_in_memory_and_spare_cores_for_the_store(monkeypatch):
    from learner.train.loading import loader_workers

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert (
        loader_workers(None, "memory") == 0
        and loader_workers(None, "disk") == 4
        and loader_workers(2, "memory") == 2
    )
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert loader_workers(None, "disk") == 1


def _threads_in_child(env: dict[str, str]) -> str:
    code = (
        "import sys; from learner.train.threads import configure_threads; n = configure_threads('auto'); "
        "assert 'torch' not in sys.modules; import os, torch; "
        "print(n, torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])"
    )
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "LOCAL_WORLD_SIZE")
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_auto_threads_share_the_cores_and_sleep_while_waiting_before_torch_loads():
    cores = len(os.sched_getaffinity(0))
    assert (
        _threads_in_child({"LOCAL_WORLD_SIZE": "2"}) == f"{max(1, cores // 2)} {max(1, cores // 2)} PASSIVE"
    )
    assert (
        _threads_in_child({"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"}) == "1 1 ACTIVE"
    )  # yours are kept


def test_a_thread_count_applies_even_after_torch_loaded():
    import torch

    from learner.train.threads import configure_threads

    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="threads=0"):
            configure_threads(0)
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the CPU-only messages")
def test_mixed_precision_on_a_cpu_is_an_error_that_names_the_setting():
    from learner.train.distributed import check_precision

    with pytest.raises(ValueError, match="precision=fp16 needs a CUDA GPU"):
        check_precision("fp16", False)
    with pytest.raises(ValueError, match="precision=fp8: expected one of fp32, fp16, bf16"):
        check_precision("fp8", False)
    check_precision("fp32", True)  # channels_last alone is only skipped


def test_without_a_launcher_one_process_is_the_main_one(monkeypatch):
    from learner.train.distributed import is_main_process, main_first, world_size

    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert world_size() == 1 and is_main_process() and main_first(lambda: 7) == 7
