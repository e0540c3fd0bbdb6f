"""The demo under load (issue 13, item 2): does a short clip keep its latency while others send long files?

    OMP_NUM_THREADS=1 .venv/bin/python bench/demo_load.py [--modes lanes,off] [--users 16] [--clips 5]
        [--hostile 20] [--long-users 2] [--streamers 1[,0]] [--think 2,6] [--unloaded 40] [--model DIR]
        [--cache DIR]

Starts `python app.py` (the shipped model unless --model; OMP_NUM_THREADS=1, as on the Space) once per mode
and talks to it through its HTTP API with gradio_client, as a user's script would:
- unloaded: one user sends the shipped example clips one after another (`--unloaded` requests);
- loaded: `--users` users each send `--clips` good clips with a think time between them (uniform in
  `--think` seconds), one more user sends `--hostile` hostile uploads (empty, text, truncated,
  header-inflated,
  random bytes, …), `--streamers` users stream their microphone into the Live tab (headless Chromium,
  bench/live_streamer.py), and `--long-users` users keep sending, in turn, the 590 s 384 kHz 8-channel
  FLAC (refused from its header) and a 9-minute 48 kHz stereo FLAC (allowed) until the good clips are done.
Modes: `lanes` (long files in their own worker process, learner/demo/lanes.py) and `off`
(EARSHOT_LONG_LANE=off:
every request in the server's two slots, as before). Prints p50/p95 of the good clips' latency, unloaded and
loaded, their ratio (acceptance: loaded p95 < 3× unloaded), and what the long and hostile requests got.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchkit import ROOT, parser  # first: it puts the checkout on the import path
from live_streamer import Streamer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_files(cache: Path) -> dict[str, list[Path]]:
    """Good clips (the shipped examples), hostile uploads, and the two long files (cached: the 384 kHz one
    takes a while to write)."""
    import numpy as np
    import soundfile as sf

    cache.mkdir(parents=True, exist_ok=True)
    good = sorted(p for p in (ROOT / "examples" / "speech-words").glob("*.flac") if "-" not in p.stem)
    refused = cache / "590s_384k_8ch.flac"
    if not refused.exists():  # 590 s of silence at 384 kHz × 8 channels: small on disk, 1.8 G samples
        tmp = refused.with_suffix(".tmp.flac")
        with sf.SoundFile(tmp, "w", 384_000, 8, "PCM_16", format="FLAC") as f:
            block = np.zeros((384_000, 8), np.int16)
            for _ in range(590):
                f.write(block)
        tmp.rename(refused)
    allowed = cache / "9min_48k_stereo.flac"
    if not allowed.exists():  # quiet noise with the example words repeated in it: a real 9 minutes to read
        rng = np.random.default_rng(0)
        words = [sf.read(p, dtype="float32")[0] for p in good]
        rate = sf.info(good[0]).samplerate
        tmp = allowed.with_suffix(".tmp.flac")
        with sf.SoundFile(tmp, "w", 48_000, 2, "PCM_16", format="FLAC") as f:
            for second in range(540):
                x = 0.003 * rng.standard_normal((48_000, 2)).astype(np.float32)
                if second % 3 == 0:
                    w = words[second // 3 % len(words)]
                    w = np.interp(np.arange(0, len(w), rate / 48_000), np.arange(len(w)), w)[:48_000]
                    x[: len(w)] += 0.5 * w[:, None]
                f.write(x)
        tmp.rename(allowed)
    hostile = cache / "hostile"
    hostile.mkdir(exist_ok=True)
    wav = (good[0]).read_bytes()
    tone = cache / "tone.wav"
    sf.write(
        tone,
        (0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440)).astype(np.float32),
        16000,
        subtype="PCM_16",
    )
    t = bytearray(tone.read_bytes())
    inflated = bytearray(t)
    inflated[40:44] = (2**31).to_bytes(4, "little")  # the data chunk claims 2^31 bytes over ~32 KB
    rnd = np.random.default_rng(1)
    kinds = {
        "empty.wav": b"",
        "notes.wav": b"not audio, just text\n" * 50,
        "truncated.wav": bytes(t[:30]),
        "random.mp3": rnd.integers(0, 256, 50_000, np.uint8).tobytes(),
        "inflated.wav": bytes(inflated),
        "one_sample.wav": bytes(t[:44]) + b"\x00\x00",
        "corrupt.flac": wav[:200] + rnd.integers(0, 256, 8000, np.uint8).tobytes(),
        "image.wav": b"\x89PNG\r\n\x1a\n" + bytes(2000),
        "zip.ogg": b"PK\x03\x04" + bytes(5000),
        "riff_only.wav": b"RIFF\x00\x00\x00\x00WAVE",
    }
    paths = []
    for name, data in kinds.items():
        (hostile / name).write_bytes(data)
        paths.append(hostile / name)
    return {"good": good, "hostile": paths, "refused": [refused], "allowed": [allowed]}


def start_server(mode: str, model: str | None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "EARSHOT_LONG_LANE": "on" if mode == "lanes" else "off",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    cmd = [sys.executable, "app.py", "--port", str(port), "--host", "127.0.0.1"] + (
        ["--model", model] if model else []
    )
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited: {proc.stderr.read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("app.py did not start in 300 s") from None
            time.sleep(0.2)
    return proc, url


def _procs() -> dict[int, tuple[int, float, int]]:
    """pid → (parent pid, CPU seconds (user + system), nice) of every process."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                f = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
                table[int(name)] = (int(f[1]), cpu, int(f[16]))
            except (OSError, IndexError, ValueError):
                continue
    return table


def _cpu_s(root: int, browsers: list[int] = ()) -> dict[str, float]:
    """CPU seconds of the server process, of its children by CPU priority (short-lane workers at nice 0,
    the live lane's at 5, the long lane's at 10), and of the streaming users' browsers (chromedriver and
    every process under it): on a Space those run on the users' machines, here on the same cores."""
    table = _procs()
    out = {"server": table.get(root, (0, 0.0, 0))[1], "worker": 0.0, "browsers": 0.0}
    for parent, cpu, nice in table.values():
        if parent == root:
            out["worker"] += cpu
            out[f"nice {nice}"] = out.get(f"nice {nice}", 0.0) + cpu
    tree = set(browsers)
    for _ in range(8):  # descendants, a level at a time
        tree |= {pid for pid, (parent, _, _) in table.items() if parent in tree}
    out["browsers"] = sum(table[pid][1] for pid in tree if pid in table)
    return out


def _client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def _send(client, path: Path) -> tuple[float, str]:
    """(seconds, "ok" | the error's first words) for one /classify request."""
    from gradio_client import handle_file

    t0 = time.perf_counter()
    try:
        client.predict(handle_file(str(path)), api_name="/classify")
        what = "ok"
    except Exception as e:  # AppError: the demo's message for a refused upload
        what = str(e).split("\n")[0][:100]
    return time.perf_counter() - t0, what


def _q(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def run_mode(mode: str, files: dict[str, list[Path]], args: argparse.Namespace, n_streamers: int) -> dict:
    proc, url = start_server(mode, args.model)
    try:
        probe = _client(url)
        for p in files["good"][:3]:
            _send(probe, p)  # warm-up: first requests load matplotlib, the model's session, …
        time.sleep(5 if mode == "lanes" else 0)  # the long lane's worker is warming up in the background
        unloaded = []
        cpu0 = _cpu_s(proc.pid)
        for i in range(args.unloaded):
            s, what = _send(probe, files["good"][i % len(files["good"])])
            assert what == "ok", what
            unloaded.append(s)
        cpu1 = _cpu_s(proc.pid)
        lo, hi = args.think
        good: list[float] = []
        good_failed: list[str] = []
        bad: list[tuple[float, str]] = []
        longs: list[tuple[str, float, str]] = []
        stop = threading.Event()
        clients = [_client(url) for _ in range(args.users + 1 + args.long_users)]
        lock = threading.Lock()

        def user(i: int) -> None:
            r = random.Random(i)
            for _ in range(args.clips):
                time.sleep(r.uniform(lo, hi))
                s, what = _send(clients[i], r.choice(files["good"]))
                with lock:
                    good.append(s) if what == "ok" else good_failed.append(what)

        def attacker() -> None:
            r = random.Random(99)
            for k in range(args.hostile):
                time.sleep(
                    r.uniform(lo, hi) * args.clips / max(1, args.hostile)
                )  # spread over the good clips' time
                s, what = _send(clients[args.users], files["hostile"][k % len(files["hostile"])])
                with lock:
                    bad.append((s, what))

        def long_user(j: int) -> None:
            k = j
            while not stop.is_set():
                which = ("refused", "allowed")[k % 2]
                s, what = _send(clients[args.users + 1 + j], files[which][0])
                with lock:
                    longs.append((which, s, what))
                k += 1

        long_threads = [threading.Thread(target=long_user, args=(j,)) for j in range(args.long_users)]
        streamers = [Streamer(url, stop) for _ in range(n_streamers)]  # the Live tab, streaming
        long_threads += streamers
        for t in long_threads:
            t.start()
        time.sleep(3)  # the long users are under way before the first good clip
        deadline = time.monotonic() + 120
        while any(t.is_alive() and not t.streaming for t in streamers) and time.monotonic() < deadline:
            time.sleep(0.2)  # until Record is pressed on every page
        browsers = [t.browser_pid for t in streamers if t.browser_pid]
        cpu_at = _cpu_s(proc.pid, browsers)  # the load phase starts
        heard0 = [t.heard_s for t in streamers]
        load_start = os.getloadavg()[0]
        threads = [threading.Thread(target=user, args=(i,)) for i in range(args.users)] + [
            threading.Thread(target=attacker)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu2 = _cpu_s(proc.pid, browsers)
        heard = [t.heard_s - h for t, h in zip(streamers, heard0, strict=True)]
        stop.set()
        for t in long_threads:
            t.join()
        return {
            "mode": mode,
            "n_streamers": n_streamers,
            "unloaded": unloaded,
            "good": good,
            "good_failed": good_failed,
            "bad": bad,
            "longs": longs,
            "streamers": [(t.updates, h, t.error) for t, h in zip(streamers, heard, strict=True)],
            "wall_s": wall,
            "load": (load_start, os.getloadavg()[0]),
            "cpu_per_clip_s": (cpu1["server"] - cpu0["server"]) / max(1, args.unloaded),
            "loaded_cpu_s": {k: cpu2[k] - cpu_at.get(k, 0.0) for k in cpu2},
        }
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def report(r: dict) -> str:
    u, g = r["unloaded"], r["good"]
    ratio = _q(g, 0.95) / _q(u, 0.95)
    refused = [s for w, s, what in r["longs"] if w == "refused"]
    allowed = [(s, what) for w, s, what in r["longs"] if w == "allowed"]
    ok_long = [s for s, what in allowed if what == "ok"]
    c = r["loaded_cpu_s"]
    lines = [
        f"mode {r['mode']}, {r['n_streamers']} streaming: short clip unloaded p50 {1e3 * _q(u, 0.5):.0f} "
        f"ms, p95 {1e3 * _q(u, 0.95):.0f} ms ({len(u)} requests); "
        f"loaded p50 {1e3 * _q(g, 0.5):.0f} ms, p95 {1e3 * _q(g, 0.95):.0f} ms, max "
        f"{1e3 * max(g, default=0):.0f} ms "
        f"({len(g)} requests) → p95 ratio {ratio:.2f}× ({'PASS' if ratio < 3 else 'FAIL'}: < 3×)",
        f"  good clips that failed: {len(r['good_failed'])} {sorted(set(r['good_failed']))[:3]}; hostile "
        "uploads: "
        f"{len(r['bad'])}, {sum(what != 'ok' for _, what in r['bad'])} refused with a message "
        f"(p95 {1e3 * _q([s for s, _ in r['bad']], 0.95):.0f} ms)",
        f"  590 s 384 kHz 8-ch FLAC: {len(refused)} sent, refused in p50 {1e3 * _q(refused, 0.5):.0f} ms "
        f"(max {1e3 * max(refused, default=0):.0f} ms, round trip incl. upload)",
        f"  9 min 48 kHz stereo FLAC: {len(allowed)} sent, {len(ok_long)} read, p50 {_q(ok_long, 0.5):.1f} "
        "s; "
        f"other answers: {sorted({what for _, what in allowed if what != 'ok'})}",
        f"  load phase {r['wall_s']:.0f} s, load average {r['load'][0]:.1f} → {r['load'][1]:.1f}; server CPU "
        "per clip "
        f"unloaded {r['cpu_per_clip_s']:.2f} s; CPU during the load phase: server "
        f"{c['server']:.1f} s, its workers {c['worker']:.1f} s ("
        + ", ".join(f"{k}: {v:.1f} s" for k, v in sorted(c.items()) if k.startswith("nice"))
        + f"), streaming users' browsers {c['browsers']:.1f} s",
    ]
    if r["streamers"]:
        lines.append(
            f"  {len(r['streamers'])} user(s) streaming the microphone into the Live tab all along: timeline "
            f"updates on their page {[u for u, _, _ in r['streamers']]}, audio the server heard "
            f"{[round(h, 1) for _, h, _ in r['streamers']]} s in the {r['wall_s']:.0f} s load phase"
            + "".join(f"; streamer failed: {e}" for _, _, e in r["streamers"] if e)
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--modes", default="lanes,off")
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--clips", type=int, default=5)
    p.add_argument("--hostile", type=int, default=20)
    p.add_argument("--long-users", type=int, default=2)
    p.add_argument("--think", type=lambda s: tuple(float(x) for x in s.split(",")), default=(2.0, 6.0))
    p.add_argument("--unloaded", type=int, default=40)
    p.add_argument(
        "--streamers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1],
        help="users streaming into the Live tab (Chromium); a list (1,0) runs each, side by side",
    )
    p.add_argument("--model", default=None)
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "earshot-demo-load"))
    p.add_argument("--json", default=None, help="also write every latency here")
    args = p.parse_args(argv)
    files = make_files(Path(args.cache))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; {args.users} users × {args.clips} good clips (think {args.think[0]:g}–"
        f"{args.think[1]:g} s), {args.hostile} hostile uploads, {args.long_users} long-file users",
        flush=True,
    )
    results = []
    for mode in args.modes.split(","):
        for n in args.streamers:
            results.append(run_mode(mode, files, args, n))
            print(report(results[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=str))
    if len(results) == 2 and len(args.streamers) == 1:
        a, b = (_q(r["good"], 0.95) for r in results)
        print(
            f"loaded p95, {results[0]['mode']} vs {results[1]['mode']}: {1e3 * a:.0f} vs {1e3 * b:.0f} ms "
            f"({b / a:.1f}× slower without lanes)"
            if a
            else ""
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
