"""MLflow as its users expect it, on the tiny run's registry: every version is a pyfunc model
(`MLmodel`, signature, input example) that `mlflow.pyfunc.load_model("models:/…@champion")`
loads and that predicts exactly what alphafactory's own model predicts, also after the runs
folder moved."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pytest
from mlflow.exceptions import MlflowException
from tiny_run import TinyRuns, clone_runs

from alphafactory.backtest.trades import PROBABILITY_COLUMNS
from alphafactory.layout import RunLayout
from alphafactory.models import load_model
from alphafactory.registry import CHAMPION, ModelRegistry, registered_model_name
from alphafactory.stages.infer import trained_models

SKILLED = ["BTC_w10_high", "BTC_w10_low", "BTC_w3_high", "BTC_w3_low"]


@pytest.fixture(scope="module")
def runs(tiny_runs: TinyRuns, tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    return clone_runs(tiny_runs, tmp_path_factory.mktemp("mlflow-pyfunc"))


@contextmanager
def tracking(database: Path) -> Iterator[None]:
    """MLflow's tracking and registry URI pointed at one SQLite file, reset afterwards."""
    mlflow.set_tracking_uri(f"sqlite:///{database}")
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)


def matrix_frame(runs: TinyRuns) -> pd.DataFrame:
    """Every row of the run's feature matrix as a user would pass it (float32 columns)."""
    return pl.read_parquet(runs.run_dir / "prepare" / "features.parquet").to_pandas()


def expected_probabilities(runs: TinyRuns, gid: str, frame: pd.DataFrame) -> np.ndarray:
    """alphafactory's own prediction: the run's model file, verified and loaded."""
    fitted = trained_models(RunLayout(str(runs.run_dir)), len(runs.plan["shards"]))[gid]
    model = load_model(runs.run_dir / "train" / "models" / f"{gid}.zip", fitted["sha256"])
    return model.predict_proba(frame[list(model.feature_names)].to_numpy(np.float32))


def test_every_version_is_a_pyfunc_model_with_signature_and_example(runs: TinyRuns) -> None:
    registry = ModelRegistry(root=runs.runs_dir / "registry")
    models = registry.list_models()
    assert len(models) == 8
    with tracking(runs.runs_dir / "registry" / "mlflow.db"):
        for model in models:
            folder = Path(mlflow.artifacts.download_artifacts(f"models:/{model.model_id}"))
            assert {p.name for p in folder.iterdir()} >= {
                "MLmodel",
                "pyfunc_entry.py",
                model.artifact_file,
                "input_example.json",
            }
            meta = mlflow.models.Model.load(str(folder))
            features = registry.info(model.model_id).lineage.feature_list
            assert meta.signature.inputs.input_names() == list(features)
            assert meta.signature.outputs.input_names() == list(PROBABILITY_COLUMNS)
            example = meta.load_input_example(str(folder))
            assert list(example.columns) == list(features) and len(example) == 5
            assert not example.isna().any().any()  # the last complete rows of the matrix
            # the bundle sits where `download` always found it, with its registered digest
            assert (folder / model.artifact_file).read_bytes() == (
                runs.run_dir / "train" / "models" / model.artifact_file
            ).read_bytes()


def test_champion_loads_through_mlflow_and_predicts_alphafactorys_probabilities(
    runs: TinyRuns,
) -> None:
    frame = matrix_frame(runs)
    stored = pl.read_parquet(runs.run_dir / "infer" / "predictions.parquet")
    with tracking(runs.runs_dir / "registry" / "mlflow.db"):
        for gid in SKILLED:
            loaded = mlflow.pyfunc.load_model(f"models:/{registered_model_name(gid)}@{CHAMPION}")
            predicted = loaded.predict(frame)
            assert list(predicted.columns) == list(PROBABILITY_COLUMNS)
            assert len(predicted) == len(frame) > 1000
            np.testing.assert_array_equal(
                predicted.to_numpy(), expected_probabilities(runs, gid, frame)
            )
            # and the infer stage's stored predictions (float32) of the same rows
            group = stored.filter(pl.col("group_id") == gid).select(PROBABILITY_COLUMNS)
            np.testing.assert_array_equal(predicted.to_numpy().astype(np.float32), group.to_numpy())


def test_a_missing_feature_column_is_one_clear_error(runs: TinyRuns) -> None:
    frame = matrix_frame(runs)
    with tracking(runs.runs_dir / "registry" / "mlflow.db"):
        loaded = mlflow.pyfunc.load_model(f"models:/{registered_model_name(SKILLED[0])}/1")
        first = loaded.metadata.signature.inputs.input_names()[0]
        with pytest.raises(MlflowException, match=first):
            loaded.predict(frame.drop(columns=[first]))


def test_a_moved_registry_folder_keeps_working(tiny_runs: TinyRuns, tmp_path: Path) -> None:
    runs = clone_runs(tiny_runs, tmp_path / "before")
    old_root = runs.runs_dir / "registry"
    new_root = tmp_path / "after" / "elsewhere" / "registry"
    new_root.parent.mkdir(parents=True)
    shutil.move(old_root, new_root)  # the old place no longer exists
    assert not old_root.exists()
    frame = matrix_frame(runs)
    gid = SKILLED[2]

    registry = ModelRegistry(root=new_root)  # opening it re-roots the stored locations
    champion = registry.champion(registered_model_name(gid))
    assert champion is not None
    path = registry.download(champion.model_id, tmp_path / "download")
    model = load_model(path, champion.sha256)
    expected = expected_probabilities(runs, gid, frame)
    got = model.predict_proba(frame[list(model.feature_names)].to_numpy(np.float32))
    np.testing.assert_array_equal(got, expected)

    with closing(sqlite3.connect(new_root / "mlflow.db")) as db:
        sources = [row[0] for row in db.execute("SELECT source FROM model_versions")]
        runs_uris = [row[0] for row in db.execute("SELECT artifact_uri FROM runs")]
    assert len(sources) == 8 and all(s.startswith(new_root.as_uri() + "/") for s in sources)
    assert runs_uris and all(str(old_root) not in uri for uri in runs_uris)
    assert all(uri.startswith(new_root.as_uri() + "/") for uri in runs_uris)

    # MLflow's own tools find the artifacts at the new place too
    with tracking(new_root / "mlflow.db"):
        loaded = mlflow.pyfunc.load_model(f"models:/{registered_model_name(gid)}@{CHAMPION}")
        np.testing.assert_array_equal(loaded.predict(frame).to_numpy(), expected)
    assert ModelRegistry(root=new_root).champion(registered_model_name(gid)) == champion
