"""Issue 25, items 3, 4 and 11: a job writes only into a folder it can prove it wrote, and commits parts
while a long file streams. Each test fails on the code before the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from tests.test_hostile import save_untrained

SR = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("model") / "untrained", ["a", "b"])


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(d / f"c{i}.wav", (0.1 * rng.standard_normal(2 * SR)).astype("float32"), SR)
    return d


def _user_parts(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    for name in ("part-00000.parquet", "part-00007.parquet"):
        pq.write_table(pa.table({"mine": [1, 2, 3]}), folder / name)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_resume_never_touches_a_users_parts_in_the_windows_folder(model_dir, clips, tmp_path):
    from jobs.score import main

    out = tmp_path / "sx.parquet"
    side = tmp_path / "sx.windows.parquet"
    before = _user_parts(side)
    args = [str(clips), "--model", str(model_dir), "--out", str(out), "--windows", "1,1", "--quiet"]
    with pytest.raises(FileExistsError, match="sx.windows.parquet: holds files") as e:
        main([*args, "--resume"])
    assert "\n" not in str(e.value)
    assert {p.name: p.read_bytes() for p in side.iterdir()} == before and not out.exists()


def test_resume_refuses_a_part_its_metadata_does_not_list(model_dir, clips, tmp_path):
    from jobs.score import main

    out = tmp_path / "sx.parquet"
    args = [str(clips), "--model", str(model_dir), "--out", str(out), "--windows", "1,1", "--quiet"]
    main(args)
    side = tmp_path / "sx.windows.parquet"
    pq.write_table(pa.table({"mine": [1]}), side / "part-00007.parquet")
    before = {p.name: p.read_bytes() for p in (*side.iterdir(), *out.iterdir())}
    with pytest.raises(FileExistsError, match="part-00007.parquet: a part this scoring output did not write"):
        main([*args, "--resume"])
    assert {p.name: p.read_bytes() for p in (*side.iterdir(), *out.iterdir())} == before
    (side / "part-00007.parquet").unlink()
    main([*args, "--resume"])  # its own output still resumes
