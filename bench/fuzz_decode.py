"""Fuzz `learner.audio.decode.decode` / `probe`: mutated WAV/FLAC/MP3/M4A/WebM/Ogg bytes must only ever raise
AudioDecodeError subclasses — never another exception, a crash or a hang.

    python bench/fuzz_decode.py --seconds 600                  # byte-level mutator (default)
    python bench/fuzz_decode.py --seconds 600 --engine atheris  # libFuzzer mutations, if atheris is installed
    python bench/fuzz_decode.py --replay bench/fuzz-findings/exception-1a2b3c.bin

The fuzz loop runs in a child process (one core). The parent watches a heartbeat: a child killed by a
signal is a crash, one stuck on an input for `--hang-s` is a hang; both keep the input that did it.
Every finding is saved as `<kind>-<sha1>.bin` plus a `.txt` with the call and the traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

from benchkit import ROOT  # first: it puts the checkout on the import path

INTERESTING = [
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    8000,
    44100,
    48000,
    192000,
    768001,
]
OUTCOMES = [
    "decoded",
    "NotAudioError",
    "EmptyAudioError",
    "CorruptAudioError",
    "UnsupportedCodecError",
    "TooLongError",
    "AudioDecodeError",
    "unexpected",
    "bad-output",
    "warning",
]


def seeds(d: Path) -> dict[str, bytes]:
    """Valid files of every kind the decoder chain handles (short, so each try is quick)."""
    from learner.audio.encode import tone, write_av, write_sf

    d.mkdir(parents=True, exist_ok=True)
    st, mono, st48 = tone(22050, 0.3, 2), tone(16000, 0.3), tone(48000, 0.3, 2)
    files = [
        write_sf(d / "a.wav", st, 22050, "PCM_16"),
        write_sf(d / "b.wav", mono, 16000, "PCM_24"),
        write_sf(d / "c.wav", mono, 16000, "FLOAT"),
        write_sf(d / "d.wav", st, 22050, "IMA_ADPCM"),
        write_sf(d / "e.wav", mono, 16000, "ULAW"),
        write_av(d / "f.wav", mono, 16000, "wav", "pcm_s64le"),
        write_sf(d / "a.flac", st, 22050, "PCM_16"),
        write_sf(d / "b.flac", mono, 16000, "PCM_24"),
        write_sf(d / "a.mp3", mono, 16000, "MPEG_LAYER_III", "MP3"),
        write_av(d / "b.mp3", st, 22050, "mp3", "libmp3lame"),
        write_av(d / "a.m4a", st, 22050, "ipod", "aac"),
        write_av(d / "b.m4a", mono, 16000, "ipod", "alac"),
        write_av(d / "a.webm", st48, 48000, "webm", "libopus"),
        write_av(d / "a.aac", mono, 16000, "adts", "aac"),
        write_sf(d / "a.ogg", st, 22050, "VORBIS", "OGG"),
        write_av(d / "b.ogg", mono, 16000, "ogg", "flac"),
        write_sf(d / "a.opus", tone(48000, 0.3), 48000, "OPUS", "OGG"),
        write_sf(d / "a.aiff", mono, 16000, "PCM_16", "AIFF"),
    ]
    return {p.name: p.read_bytes() for p in files}


def mutate(data: bytes, pool: list[bytes], rng: random.Random) -> bytes:
    """1–4 stacked byte-level mutations, biased towards headers (the first 256 bytes)."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        n = len(b)
        pos = rng.randrange(min(n, 256)) if n and rng.random() < 0.5 else (rng.randrange(n) if n else 0)
        op = rng.randrange(10)
        if op == 0 and n:  # flip bits
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # interesting byte
            b[pos] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2 and n > 4:  # interesting 16/32-bit field, either endianness
            size = rng.choice([2, 4])
            v = rng.choice(INTERESTING + [n, rng.getrandbits(32)]) & ((1 << 8 * size) - 1)
            b[pos : pos + size] = v.to_bytes(size, rng.choice(["little", "big"]))
        elif op == 3:  # truncate
            del b[rng.randrange(n + 1) :]
        elif op == 4 and n:  # delete a chunk
            del b[pos : pos + rng.randint(1, 512)]
        elif op == 5 and n:  # duplicate a chunk in place
            k = rng.randrange(n)
            b[pos:pos] = b[k : k + rng.randint(1, 1024)]
        elif op == 6:  # splice in a piece of another seed
            other = rng.choice(pool)
            k = rng.randrange(len(other))
            b[pos : pos + rng.randint(0, 256)] = other[k : k + rng.randint(1, 2048)]
        elif op == 7:  # random bytes (append or overwrite)
            junk = rng.randbytes(rng.randint(1, 512))
            b[pos : pos + (len(junk) if rng.random() < 0.5 else 0)] = junk
        elif op == 8 and n:  # zero a region
            k = rng.randint(1, 256)
            b[pos : pos + k] = bytes(len(b[pos : pos + k]))
        elif op == 9 and n > 8:  # swap two chunks
            k = rng.randint(1, min(256, n // 2))
            i, j = sorted(rng.sample(range(n - k + 1), 2)) if n - k + 1 > 1 else (0, 0)
            if j - i >= k:
                b[i : i + k], b[j : j + k] = b[j : j + k], b[i : i + k]
    return bytes(b)


def call_for(rng: random.Random) -> dict:
    """Which API call to make: plain decode, resampled window, probe, or a path with a telling extension."""
    r = rng.random()
    if r < 0.5:
        return {"fn": "decode"}
    if r < 0.67:
        return {
            "fn": "decode",
            "sample_rate": 16000,
            "offset_s": round(rng.random() * 0.4, 3),
            "duration_s": round(0.01 + rng.random() * 0.3, 3),
        }
    if r < 0.8:
        return {"fn": "probe"}
    if (
        r < 0.9
    ):  # block-wise decoding of long files (learner.audio.stream), small blocks to cross many borders
        return {
            "fn": "stream",
            "sample_rate": rng.choice([None, 16000, 22050]),
            "block": rng.choice([1024, 4096]),
        }
    return {
        "fn": "decode",
        "path_ext": rng.choice([".wav", ".mp3", ".au", ".gsm", ".vox", ".raw", ".m4a", ".ogg"]),
    }


def run_call(data: bytes, call: dict, scratch: Path) -> object:
    from learner.audio import decode, probe

    src: bytes | Path = data
    if "path_ext" in call:
        src = scratch / f"input{call['path_ext']}"
        src.write_bytes(data)
    if call["fn"] == "probe":
        return probe(src)
    if call["fn"] == "stream":
        from dataclasses import replace

        import numpy as np

        from learner.audio.stream import stream_decode

        blocks: list = []
        d = stream_decode(
            src,
            call["sample_rate"],
            blocks.append,
            max_duration_s=60.0,
            max_bytes=50 * 2**20,
            block=call["block"],
        )
        return replace(d, samples=np.concatenate(blocks) if blocks else np.zeros(0, np.float32))
    kw = {k: v for k, v in call.items() if k in ("sample_rate", "offset_s", "duration_s")}
    return decode(src, max_duration_s=60.0, max_bytes=50 * 2**20, **kw)


def check_output(result: object, call: dict) -> str | None:
    """What a successful call must give: finite mono float32 of the length it claims (None = fine)."""
    import numpy as np

    if call["fn"] == "probe":
        ok = result.sample_rate > 0 and result.channels > 0 and result.frames >= 0 and result.duration_s >= 0
        return None if ok else f"odd probe result {result}"
    x = result.samples
    if x.dtype != np.float32 or x.ndim != 1 or x.size == 0:
        return f"samples {x.dtype} {x.shape}"
    if not np.isfinite(x).all():
        return "non-finite samples"
    if call.get("sample_rate") is None and np.abs(x).max() > 1.0:
        return f"samples beyond [-1, 1]: {np.abs(x).max()}"
    if (
        abs(x.size - result.duration_s * result.sample_rate)
        > 1 + result.sample_rate / result.orig_sample_rate
    ):
        return f"{x.size} samples for {result.duration_s} s at {result.sample_rate} Hz"
    if "duration_s" in call and result.duration_s > call["duration_s"] + 1 / result.orig_sample_rate:
        return f"window of {result.duration_s} s for {call['duration_s']} s asked"
    return None


def save(out: Path, kind: str, data: bytes, call: dict, detail: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{kind}-{hashlib.sha1(data).hexdigest()[:12]}.bin"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(
        f"call: {json.dumps(call)}\nreplay: python bench/fuzz_decode.py --replay {path}\n\n{detail}\n"
    )
    return path


def child(args: argparse.Namespace, counts, beat, current: str) -> None:
    """The fuzz loop (in its own process). Before each try, the input and call go to `current`."""
    import resource

    from learner.audio import AudioDecodeError

    resource.setrlimit(resource.RLIMIT_AS, (args.mem_gb * 2**30, args.mem_gb * 2**30))
    log = os.open(Path(current).with_name("child.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 2)  # libmpg123 / libFuzzer chatter goes to the log, not the console
    rng = random.Random(args.seed + os.getpid())
    work = Path(current).parent
    pool = list(seeds(work / "seeds").values())
    scratch = work / "scratch"
    scratch.mkdir(exist_ok=True)
    seen: set[str] = set()

    def report(kind: str, key: str, data: bytes, call: dict, detail: str) -> None:
        if key not in seen:
            seen.add(key)
            save(Path(args.out), kind, data, call, detail)

    def one(data: bytes, call: dict) -> None:
        Path(current).write_bytes(json.dumps(call).encode() + b"\n" + data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                bad = check_output(run_call(data, call, scratch), call)
                outcome = "decoded" if bad is None else "bad-output"
                if bad:
                    report("output", bad.split(" ")[0], data, call, bad)
            except AudioDecodeError as e:
                outcome = type(e).__name__
            except Exception as e:  # noqa: BLE001 (that is what we are looking for)
                outcome = "unexpected"
                key = f"{type(e).__name__}@{traceback.extract_tb(e.__traceback__)[-1][:3]}"
                report("exception", key, data, call, traceback.format_exc())
        for w in caught:
            outcome = "warning" if outcome == "decoded" else outcome
            report(
                "warning",
                f"{w.category.__name__}@{w.filename}:{w.lineno}",
                data,
                call,
                f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})",
            )
        with counts.get_lock():
            counts[OUTCOMES.index(outcome)] += 1
        beat.value = time.monotonic()

    if args.engine == "atheris":
        import atheris

        def test_one(raw: bytes) -> None:
            one(raw if rng.random() < 0.5 else mutate(raw, pool, rng), call_for(rng))

        corpus_dir = work / "atheris-corpus"
        corpus_dir.mkdir(exist_ok=True)
        for i, s in enumerate(pool):
            (corpus_dir / f"seed{i}").write_bytes(s)
        atheris.Setup(
            [sys.argv[0], str(corpus_dir), "-max_len=200000", f"-timeout={args.hang_s}", "-rss_limit_mb=0"],
            test_one,
        )
        atheris.Fuzz()
    while True:
        one(mutate(rng.choice(pool), pool, rng), call_for(rng))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--engine", choices=["mutate", "atheris"], default="mutate")
    ap.add_argument("--out", default=str(ROOT / "bench" / "fuzz-findings"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hang-s", type=float, default=30.0, help="no progress for this long = a hang")
    ap.add_argument("--mem-gb", type=int, default=4, help="address-space limit of the fuzzing child")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--replay", help="re-run one saved finding and show what happens")
    args = ap.parse_args()
    if args.replay:
        data = Path(args.replay).read_bytes()
        call = json.loads(
            Path(args.replay).with_suffix(".txt").read_text().split("\n")[0].removeprefix("call: ")
        )
        print(f"{call} on {len(data)} bytes ->", flush=True)
        with tempfile.TemporaryDirectory() as scratch:
            print(repr(run_call(data, call, Path(scratch))))
        return

    ctx = mp.get_context("spawn")
    counts, beat = ctx.Array("q", len(OUTCOMES)), ctx.Value("d", time.monotonic())
    work = Path(tempfile.mkdtemp(prefix="fuzz-decode-"))  # seeds, scratch, the current input, child.log
    current = str(work / "input.cur")
    crashes = hangs = restarts = 0
    before = set(Path(args.out).glob("*.bin"))
    start = time.monotonic()
    deadline = start + args.seconds
    while time.monotonic() < deadline:
        beat.value = time.monotonic() + 60  # allow for start-up (imports, seed encoding)
        proc = ctx.Process(target=child, args=(args, counts, beat, current), daemon=True)
        proc.start()
        while proc.is_alive() and time.monotonic() < deadline and time.monotonic() - beat.value < args.hang_s:
            proc.join(0.5)
        if proc.is_alive():
            stuck = time.monotonic() - beat.value >= args.hang_s
            proc.kill()
            proc.join()
            if not stuck:
                break
            hangs += 1
            kind = "hang"
        else:
            crashes += 1
            kind = f"crash{proc.exitcode}"
        restarts += 1
        if Path(current).exists():
            call_line, data = Path(current).read_bytes().split(b"\n", 1)
            log = work / "child.log"
            tail = log.read_bytes()[-2000:].decode(errors="replace") if log.exists() else ""
            p = save(
                Path(args.out), kind, data, json.loads(call_line), f"child ended: {kind}\n\nlog tail:\n{tail}"
            )
            print(f"{kind}: saved {p}", flush=True)
    elapsed = time.monotonic() - start
    tried = sum(counts[:])
    figures = {
        "engine": args.engine,
        "seconds": round(elapsed, 1),
        "inputs": tried,
        "inputs_per_s": round(tried / elapsed, 1),
        "outcomes": dict(zip(OUTCOMES, counts[:])),
        "unexpected_exceptions": counts[OUTCOMES.index("unexpected")],
        "bad_outputs": counts[OUTCOMES.index("bad-output")],
        "warnings": counts[OUTCOMES.index("warning")],
        "crashes": crashes,
        "hangs": hangs,
        "restarts": restarts,
        "cpu": f"{os.cpu_count()} cores",
        "new_findings": sorted(str(p) for p in set(Path(args.out).glob("*.bin")) - before),
    }
    print(json.dumps(figures, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
