"""The plain fastai recipe that earshot's defaults are measured against (issue #11), for any earshot manifest.

    python bench/reference_fastai.py --data MANIFEST.csv --out DIR [--seed 0] [--epochs 10]

soundfile decode → mono → resample to 16 kHz → random crop / zero-pad to 1 s (centre at validation) →
torchaudio MelSpectrogram(n_fft=1024, hop_length=256, n_mels=128) → AmplitudeToDB(top_db=80) → per-clip
standardisation → FrequencyMasking(15) + TimeMasking(20) (train only) → fastai xresnet18(c_in=1) →
fit_one_cycle(10, 3e-3), Adam, batch 64, no mixup. Accuracy is the final epoch's on the manifest's `valid`
rows (or a fold/split given by flags); writes DIR/result.json with accuracy, wall and CPU seconds.

Deliberately independent of learner/: it is the yardstick, so nothing earshot changes can move it.
"""

from __future__ import annotations

import json
import resource
import time
from math import gcd
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
import torchaudio
from benchkit import parser  # first: it puts the checkout on the import path
from scipy.signal import resample_poly

SR, N = 16000, 16000


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load(path: str) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        g = gcd(sr, SR)
        x = resample_poly(x, SR // g, sr // g).astype(np.float32)
    return x


def crop_or_pad(x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    if x.size >= N:
        start = int(rng.integers(0, x.size - N + 1)) if rng is not None else (x.size - N) // 2
        return x[start : start + N]
    out = np.zeros(N, np.float32)
    start = int(rng.integers(0, N - x.size + 1)) if rng is not None else (N - x.size) // 2
    out[start : start + x.size] = x
    return out


class Clips(torch.utils.data.Dataset):
    def __init__(self, signals: list[np.ndarray], labels: np.ndarray, train: bool, seed: int) -> None:
        self.signals, self.labels, self.train = signals, labels, train
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.signals)

    def __getitem__(self, i: int):
        x = crop_or_pad(self.signals[i], self.rng if self.train else None)
        return torch.from_numpy(x).unsqueeze(0), int(self.labels[i])


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", required=True, help="earshot manifest CSV (path,label,split)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-split", default="train", help="split value(s) to train on, comma-separated")
    p.add_argument("--valid-split", default="valid")
    args = p.parse_args()

    from fastai.callback.core import Callback
    from fastai.callback.progress import ProgressCallback
    from fastai.callback.schedule import fit_one_cycle  # noqa: F401
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from fastai.metrics import accuracy
    from fastai.torch_core import set_seed
    from fastai.vision.models.xresnet import xresnet18

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(args.seed, reproducible=True)
    df = pd.read_csv(args.data, dtype=str)
    df["path"] = [str(q if Path(q).is_absolute() else Path(args.data).parent / q) for q in df["path"]]
    train_df = df[df["split"].isin(args.train_split.split(","))]
    valid_df = df[df["split"] == args.valid_split]
    classes = sorted(train_df["label"].unique())
    index = {c: i for i, c in enumerate(classes)}
    c0, t0 = cpu_s(), time.time()
    tr = Clips([load(q) for q in train_df["path"]], train_df["label"].map(index).to_numpy(), True, args.seed)
    va = Clips([load(q) for q in valid_df["path"]], valid_df["label"].map(index).to_numpy(), False, args.seed)
    decode_cpu = cpu_s() - c0

    mel = torchaudio.transforms.MelSpectrogram(SR, n_fft=1024, hop_length=256, n_mels=128)
    to_db = torchaudio.transforms.AmplitudeToDB(top_db=80)
    fmask, tmask = torchaudio.transforms.FrequencyMasking(15), torchaudio.transforms.TimeMasking(20)

    def features(x: torch.Tensor, train: bool) -> torch.Tensor:
        with torch.no_grad():
            s = to_db(mel(x))
            s = (s - s.mean(dim=(1, 2, 3), keepdim=True)) / (s.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
            return tmask(fmask(s)) if train else s

    class FeatureCallback(Callback):  # features on the batch; masks in training only
        order = 1

        def before_batch(self):
            self.learn.xb = (features(self.xb[0], self.training),)

    from fastai.data.load import DataLoader

    dls = DataLoaders(
        DataLoader(tr, bs=64, shuffle=True, drop_last=True), DataLoader(va, bs=128), device="cpu"
    )
    learn = Learner(
        dls,
        xresnet18(c_in=1, n_out=len(classes)),
        loss_func=CrossEntropyLossFlat(),
        metrics=accuracy,
        cbs=[FeatureCallback()],
    )
    learn.remove_cb(ProgressCallback)
    c1, t1 = cpu_s(), time.time()
    learn.fit_one_cycle(args.epochs, 3e-3)
    fit_cpu, fit_wall = cpu_s() - c1, time.time() - t1
    probs, targets = learn.get_preds(ds_idx=1)
    acc = float((probs.argmax(1) == targets).float().mean())
    result = {
        "accuracy": round(acc, 4),
        "n_train": len(tr),
        "n_valid": len(va),
        "seed": args.seed,
        "epochs": args.epochs,
        "fit_cpu_s": round(fit_cpu, 1),
        "fit_wall_s": round(fit_wall, 1),
        "decode_cpu_s": round(decode_cpu, 1),
        "cpu_s": round(cpu_s() - c0, 1),
        "wall_s": round(time.time() - t0, 1),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
