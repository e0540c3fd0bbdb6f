"""`earshot search`: exact cosine search, the stored approximate index (recall, rebuilt when the parquet
changes), queries by row and by audio, hits as a manifest."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from learner.data.sounds import make_sound
from learner.embed.index import INDEX_FILE, EmbeddingIndex, index_folder, write_vectors
from learner.embed.search import embed_query, search, write_manifest

SR = 16000


def clustered(n: int, dim: int = 64, centres: int = 30, seed: int = 0) -> np.ndarray:
    """Unit vectors around a few centres, each cluster along its own low-dimensional subspace."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(7)
    c0, bases = mix.standard_normal((centres, dim)), mix.standard_normal((centres, 4, dim)) * 0.3
    c = rng.integers(0, centres, n)
    x = c0[c] + np.einsum("nr,nrd->nd", rng.standard_normal((n, 4)), bases[c])
    x += 0.02 * rng.standard_normal(x.shape)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _exact(data: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    sims = data @ (q / np.linalg.norm(q))
    return np.argsort(-sims, kind="stable")[:k]


def test_exact_search_is_cosine_over_rows_and_skips_error_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = clustered(500) * np.random.default_rng(1).uniform(0.5, 3, (500, 1)).astype(np.float32)
    write_vectors(tmp_path / "v.parquet", data)
    t = pq.read_table(tmp_path / "v.parquet")  # an error row (no vector) in the middle: not an id
    err = pa.table({c: pa.nulls(1, t.schema.field(c).type) for c in t.column_names})
    pq.write_table(pa.concat_tables([t.slice(0, 200), err, t.slice(200)]), tmp_path / "e.parquet")
    index = EmbeddingIndex.open(tmp_path / "e.parquet")
    assert (index.method, len(index), index.dim) == ("exact", 500, 64)
    q = np.random.default_rng(2).standard_normal(64).astype(np.float32)
    rows, sims = index.search(q, 10)
    assert rows.tolist() == _exact(data / np.linalg.norm(data, axis=1, keepdims=True), q, 10).tolist()
    assert np.all(np.diff(sims) <= 0) and sims[0] <= 1.0 + 1e-6
    hits = index.hits(index.vector(300), 5, exclude=300)
    assert 300 not in [h.row for h in hits] and len(hits) == 5
    assert hits[0].path == f"v{hits[0].row:07d}.wav"  # ids are positions with the error row left out
    assert len(index.search(q, 10_000)[0]) == 500
    with pytest.raises(ValueError, match="values"):
        index.search(np.ones(3), 3)


def test_approximate_index_recall_storage_and_rebuild(tmp_path):
    data = clustered(3000)
    (tmp_path / "v.parquet").mkdir()
    write_vectors(tmp_path / "v.parquet" / "part-00000.parquet", data)
    index = EmbeddingIndex.open(tmp_path / "v.parquet", exact_max=100)
    stored = index_folder(tmp_path / "v.parquet") / INDEX_FILE
    assert index.method == "ivf" and stored.is_file() and stored.parent.name == "v.index"
    queries = clustered(50, seed=5)
    found = [index.search(q, 10)[0] for q in queries]
    truth = [_exact(data, q, 10) for q in queries]
    recall = np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)])
    assert recall >= 0.95
    rows, sims = index.search(data[42], 1)
    assert rows[0] == 42 and sims[0] == pytest.approx(1.0, abs=2e-3)
    built = stored.stat().st_mtime_ns
    assert EmbeddingIndex.open(tmp_path / "v.parquet", exact_max=100).search(data[7], 1)[0][0] == 7
    assert stored.stat().st_mtime_ns == built  # reused, not rebuilt
    more = clustered(200, seed=9)
    write_vectors(tmp_path / "v.parquet" / "part-00001.parquet", more)  # a resumed run added a part
    grown = EmbeddingIndex.open(tmp_path / "v.parquet", exact_max=100)
    assert len(grown) == 3200 and stored.stat().st_mtime_ns != built
    assert grown.search(more[3], 1)[0][0] == 3003
    np.testing.assert_allclose(grown.vector(3003), more[3], atol=0.02)  # 8-bit codes: close, not equal
    assert 3003 not in [h.row for h in grown.hits(grown.vector(3003), 5, exclude=3003)]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """A folder embedded per window with a random-weight model: (embeddings parquet, audio folder)."""
    from tests.conftest import save_untrained

    d = tmp_path_factory.mktemp("search")
    model = save_untrained(d / "m", ["chirp", "clicks", "noise", "tone"])
    audio = d / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    for i, kind in enumerate(["tone", "chirp", "noise", "clicks"] * 2):
        sf.write(audio / f"{i}_{kind}.wav", make_sound(kind, SR, 2.0, rng), SR)
    out = d / "emb.parquet"
    from jobs.embed import main

    assert main(["--model", str(model), str(audio), "--output", str(out), "--windows", "1,1", "--quiet"]) == 0
    return out, audio


def test_query_by_audio_finds_its_own_window_and_writes_a_manifest(embedded, tmp_path):
    out, audio = embedded
    index = EmbeddingIndex.open(out)
    assert len(index) == 16  # 8 files × two 1 s windows
    hits = search(index, str(audio / "2_noise.wav"), 3, start_s=1.0, end_s=2.0)
    assert (Path(hits[0].path).name, hits[0].start_s, hits[0].end_s) == ("2_noise.wav", 1.0, 2.0)
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-4)
    by_row = search(index, hits[0].row, 3)
    assert hits[0].row not in [h.row for h in by_row] and len(by_row) == 3
    manifest = write_manifest(hits, tmp_path / "hits.csv", label="noise")
    rows = list(csv.DictReader(open(manifest, encoding="utf-8")))
    assert [r["label"] for r in rows] == ["noise"] * 3 and rows[0]["start_s"] == "1.0"
    assert list(rows[0])[:4] == ["path", "label", "start_s", "end_s"]
    with pytest.raises(FileExistsError):
        write_manifest(hits, manifest)
    with pytest.raises(ValueError, match="outside"):
        embed_query(index_embedder(out), str(audio / "2_noise.wav"), 3.0, 4.0)


def index_embedder(out):
    from learner.embed.search import embedder_of

    return embedder_of(out)


def test_search_job_prints_hits_and_names_bad_input(embedded, tmp_path, capsys):
    from jobs._cli import run
    from jobs.search import main

    out, audio = embedded
    assert (
        main([str(audio / "0_tone.wav"), "--index", str(out), "-k", "4", "--out", str(tmp_path / "m.csv")])
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("rank") and len([x for x in lines if x[:1].isdigit()]) == 4
    assert Path(lines[1].split("\t")[-1]).name == "0_tone.wav" and (tmp_path / "m.csv").is_file()
    with pytest.raises(SystemExit) as e:
        run(lambda: main(["99", "--index", str(out)]))
    assert e.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("earshot: row 99 is not in")


def test_demo_find_similar_gives_a_table_and_playable_hits(embedded):
    from learner.demo.similar import COLUMNS, PLAYERS, find_similar, open_similar, outputs

    out, audio = embedded
    sim = open_similar(out)
    x, rate = sf.read(audio / "5_chirp.wav", dtype="int16")  # what gr.Audio hands over: (rate, int16)
    table, *clips = outputs(sim, (rate, x[:rate]), k=4)  # its first second: the first window
    assert len(table) == 4 and len(table[0]) == len(COLUMNS) and table[0][2:] == ["5_chirp.wav", 0.0, 1.0]
    assert [r[0] for r in table] == [1, 2, 3, 4] and table[0][1] >= table[-1][1]
    assert len(clips) == PLAYERS and all(c[0] == sim.embedder.sample_rate for c in clips)
    assert clips[0][1].size == sim.embedder.sample_rate  # a 1 s window
    assert find_similar(sim, None) == ([], [None] * PLAYERS)
