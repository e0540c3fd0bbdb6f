"""Issue 12, part C, item 12: jobs.evaluate does not score the training rows by default, and scores all rows
of other data."""

from __future__ import annotations

import json
import shutil

import pytest

from learner.data.sounds import make_dataset

# --- issue 12 part C, item 12: jobs.evaluate does not score the training rows by default --------------------


def test_evaluate_defaults_to_the_held_out_rows_of_the_training_data(trained_model, four_class_dir, capsys):
    from jobs.evaluate import main

    cfg = json.loads((trained_model.model_dir / "config.json").read_text())
    n_train, n_valid = cfg["split"]["n_train"], cfg["split"]["n_valid"]
    assert (
        main(["--model", str(trained_model.model_dir), "--data", str(four_class_dir), "--json", "--quiet"])
        == 0
    )
    m = json.loads(capsys.readouterr().out)
    assert m["split"] == "valid" and m["training_data"] is True
    assert (
        m["n_samples"] == n_valid == trained_model.metrics["n_valid"]
        and m["n_rows_in_data"] == n_train + n_valid
    )
    assert m["accuracy"] == pytest.approx(trained_model.metrics["accuracy"], abs=1e-6)
    main(["--model", str(trained_model.model_dir), "--data", str(four_class_dir)])
    assert "evaluating its held-out (validation) rows only" in capsys.readouterr().err
    main(
        [
            "--model",
            str(trained_model.model_dir),
            "--data",
            str(four_class_dir),
            "--subset",
            "all",
            "--json",
            "--quiet",
        ]
    )
    assert json.loads(capsys.readouterr().out)["n_samples"] == n_train + n_valid  # asked for: every row


def test_evaluate_scores_all_rows_of_other_data_and_warns_for_models_without_a_record(
    trained_model, tmp_path, capsys
):
    from jobs.evaluate import main

    other = make_dataset(tmp_path / "other", n_per_class=3, seed=11)
    assert main(["--model", str(trained_model.model_dir), "--data", str(other), "--json", "--quiet"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["split"] == "all" and m["training_data"] is False and m["n_samples"] == 12
    old = tmp_path / "old_model"
    shutil.copytree(trained_model.model_dir, old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["split"]
    (old / "config.json").write_text(json.dumps(cfg))
    main(["--model", str(old), "--data", str(other)])
    err = capsys.readouterr().err
    assert "does not record which files it trained on" in err and "--subset valid" in err
