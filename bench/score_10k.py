"""A 10,000-file `jobs.score` run with 5 % bad files: no crash, exactly one row per file.

    .venv/bin/python bench/score_10k.py [--files 10000] [--bad-pct 5] [--work DIR]

Files are 0.5 s at 16 kHz (WAV, FLAC, Ogg) in 20 folders; the bad 5 % cycle through empty files, text named
.wav, truncated FLAC, header-only WAV (zero frames), random bytes named .mp3 and dangling links. The model
is an untrained xresnet18 at a small AudioConfig (16 kHz, 1 s, 64 mels): this checks the job, not a model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from benchkit import ROOT, parser  # first: it puts the checkout on the import path

CLASSES = ["tone", "chirp", "noise", "clicks"]
SR = 16000
BAD_KINDS = ("empty", "text", "truncated_flac", "zero_frames", "random_mp3", "dangling_link")


def make_files(folder: Path, n: int, bad_every: int) -> dict[str, str | None]:
    """Write the corpus; returns path → expected bad kind (None for good files)."""
    from learner.data.sounds import make_sound

    rng = np.random.default_rng(0)
    good = make_sound("tone", SR, 0.5, rng)
    expected: dict[str, str | None] = {}
    for i in range(n):
        sub = folder / f"site{i % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % bad_every == bad_every - 1:
            kind = BAD_KINDS[(i // bad_every) % len(BAD_KINDS)]
            ext = {"truncated_flac": "flac", "random_mp3": "mp3"}.get(kind, "wav")
            p = sub / f"bad{i:05d}_{kind}.{ext}"
            if not p.exists() and not p.is_symlink():
                if kind == "empty":
                    p.write_bytes(b"")
                elif kind == "text":
                    p.write_text("not audio at all\n" * 10)
                elif kind == "truncated_flac":
                    sf.write(p, good, SR, format="FLAC")
                    p.write_bytes(p.read_bytes()[:300])
                elif kind == "zero_frames":
                    sf.write(p, np.zeros(0, np.float32), SR)
                elif kind == "random_mp3":
                    p.write_bytes(rng.bytes(4096))
                else:
                    os.symlink(f"missing{i}.wav", p)
            expected[os.path.abspath(p)] = kind
        else:
            ext = ("wav", "flac", "ogg")[i % 3]
            p = sub / f"clip{i:05d}.{ext}"
            if not p.exists():
                sf.write(p, make_sound(CLASSES[i % 4], SR, 0.5, rng), SR)
            expected[os.path.abspath(p)] = None
    return expected


def make_model(folder: Path) -> Path:
    from learner.config import AudioConfig
    from learner.folder import save_model_dir
    from learner.model.registry import create_model

    cfg = AudioConfig(sample_rate=SR, duration=1.0, n_mels=64, hop_length=256, n_fft=512)
    if not (folder / "config.json").exists():
        save_model_dir(
            folder,
            create_model("xresnet18", 4, cfg).eval().state_dict(),
            {"arch": "xresnet18", "input": "spectrogram", "classes": CLASSES, "audio": cfg.to_dict()},
        )
    return folder


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--bad-pct", type=float, default=5.0)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    import pyarrow.parquet as pq

    work = Path(args.work or tempfile.mkdtemp(prefix="earshot-10k-"))
    t = time.perf_counter()
    expected = make_files(work / "audio", args.files, round(100 / args.bad_pct))
    model = make_model(work / "model")
    n_bad = sum(v is not None for v in expected.values())
    print(
        f"{len(expected)} files ({n_bad} bad) ready in {time.perf_counter() - t:.0f} s; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    out = work / "scores.parquet"
    cmd = [
        sys.executable,
        "-m",
        "jobs.score",
        "--model",
        str(model),
        "--input",
        str(work / "audio"),
        "--output",
        str(out),
        "--overwrite",
        "--quiet",
    ]
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    print(r.stdout.strip())
    if r.returncode:
        raise SystemExit(f"jobs.score crashed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    table = pq.read_table(out, columns=["path", "error", "label"])
    paths, errors = table["path"].to_pylist(), table["error"].to_pylist()
    got = dict(zip(paths, errors))
    wrong = [p for p, kind in expected.items() if (got.get(p) is None) != (kind is None)]
    print(
        f"rows {table.num_rows}, unique paths {len(set(paths))}, expected {len(expected)}; "
        f"error rows {sum(e is not None for e in errors)} (expected {n_bad}); misclassified good/bad: "
        f"{len(wrong)}"
    )
    print(
        f"wall {wall:.0f} s ({len(expected) / wall:.1f} files/s incl. start-up); parts: "
        f"{len(list(out.glob('part-*.parquet')))}; load {os.getloadavg()[0]:.1f}"
    )
    for kind in BAD_KINDS:
        sample = next((got[p] for p, k in expected.items() if k == kind), None)
        print(f"  {kind:<15} → {sample}")
    ok = table.num_rows == len(set(paths)) == len(expected) and not wrong and set(paths) == set(expected)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
