"""Reference worker: the source's process-per-variant design, one variant per OS process.

Usage: ``python bench/reference_worker.py TASK.json RESULT.json``. It imports lightgbm, polars
and pyarrow, loads the whole feature matrix from parquet, selects the variant's train and
valid rows, bins a fresh ``lgb.Dataset`` for them, trains with the task's parameters and
early stopping on the chronological validation rows, and writes its result as JSON.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from alphafactory.metrics import average_precision  # noqa: E402


def main(task_path: str, result_path: str) -> None:
    imported = time.perf_counter()
    with open(task_path) as handle:
        task: dict[str, Any] = json.load(handle)
    rows = np.load(task["rows_file"])
    frame = pl.from_arrow(pq.read_table(task["features_file"]))
    assert isinstance(frame, pl.DataFrame)
    names = [c for c in frame.columns if c != "timestamp"]
    x_train = frame[rows["train_rows"]].select(names).to_numpy().astype(np.float32, copy=False)
    x_valid = frame[rows["valid_rows"]].select(names).to_numpy().astype(np.float32, copy=False)
    del frame
    loaded = time.perf_counter()
    dataset_params = task["dataset_params"]
    train = lgb.Dataset(
        x_train, label=rows["train_labels"], feature_name=names, params=dict(dataset_params)
    ).construct()
    valid = lgb.Dataset(
        x_valid,
        label=rows["valid_labels"],
        feature_name=names,
        reference=train,
        params=dict(dataset_params),
    ).construct()
    binned = time.perf_counter()
    booster = lgb.train(
        task["params"],
        train,
        num_boost_round=task["num_rounds"],
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(task["early_stopping"], verbose=False)],
    )
    probabilities = np.asarray(booster.predict(x_valid, num_iteration=booster.best_iteration))
    trained = time.perf_counter()
    result = {
        "variant_id": task["variant_id"],
        "group_id": task["group_id"],
        "status": "ok",
        "average_precision": average_precision(rows["valid_labels"], probabilities),
        "best_iteration": int(booster.best_iteration or booster.current_iteration()),
        "n_train": len(rows["train_rows"]),
        "n_valid": len(rows["valid_rows"]),
        "import_s": imported - _STARTED,
        "load_s": loaded - imported,
        "bin_s": binned - loaded,
        "train_s": trained - binned,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    with open(result_path, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
