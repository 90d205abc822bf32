"""Fit a family in a child process: a crash, an out-of-memory kill or a timeout costs that
fit only, never the shard.

Nothing is pickled on the way: the parent writes the rows as an `.npz` (arrays only) and the
request as JSON into a scratch folder; the child (`python -m alphafactory.models._child`)
imports the family's class by its module path, fits with its threads capped through the
usual environment variables, and writes a model bundle, which the parent verifies and loads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from alphafactory.errors import ModelError
from alphafactory.models._base import FitBudget, FittedModel, ModelFamily, Sample
from alphafactory.models._bundle import load_model

REQUEST = "request.json"
ROWS = "rows.npz"
BUNDLE = "model.zip"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class FitFailed(ModelError):
    """A child fit crashed, was killed or ran out of time; the message says which."""


def _sample_arrays(prefix: str, sample: Sample) -> dict[str, np.ndarray]:
    arrays = {f"{prefix}.features": sample.features, f"{prefix}.labels": sample.labels}
    optional = {"weights": sample.weights, "timestamps": sample.timestamps,
                "label_ends": sample.label_ends}  # fmt: skip
    arrays.update({f"{prefix}.{k}": v for k, v in optional.items() if v is not None})
    arrays.update({f"{prefix}.aux.{k}": v for k, v in sample.aux.items()})
    return arrays


def read_sample(rows: Mapping[str, np.ndarray], prefix: str, names: tuple[str, ...]) -> Sample:
    """The `prefix` sample of a rows file written by `fit_isolated`."""

    def get(key: str) -> np.ndarray | None:
        return rows.get(f"{prefix}.{key}")

    aux_prefix = f"{prefix}.aux."
    return Sample(
        rows[f"{prefix}.features"], rows[f"{prefix}.labels"], names,
        weights=get("weights"), timestamps=get("timestamps"), label_ends=get("label_ends"),
        aux={k[len(aux_prefix):]: rows[k] for k in rows if k.startswith(aux_prefix)},
    )  # fmt: skip


def _reason(result: subprocess.CompletedProcess[str]) -> str:
    if result.returncode < 0:
        name = signal.Signals(-result.returncode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return f"exit code {result.returncode}: {lines[-1] if lines else 'no message'}"


def fit_isolated(
    family: ModelFamily,
    train: Sample,
    valid: Sample,
    params: Mapping[str, Any],
    budget: FitBudget,
    *,
    timeout: float,
    memory_mb: int | None = None,
) -> FittedModel:
    """`family.fit(train, valid, params, budget)` in a child process; FitFailed when the
    child crashes, is killed, exceeds `memory_mb` or runs longer than `timeout` seconds."""
    cls = type(family)
    request = {
        "family_class": f"{cls.__module__}:{cls.__qualname__}",
        "feature_names": list(train.feature_names),
        "params": dict(params),
        "budget": asdict(budget),
        "memory_mb": memory_mb,
    }
    env = {**os.environ, **{name: str(budget.threads) for name in THREAD_VARIABLES}}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    with tempfile.TemporaryDirectory(prefix="alphafactory-fit-") as scratch:
        folder = Path(scratch)
        arrays = {**_sample_arrays("train", train), **_sample_arrays("valid", valid)}
        np.savez(folder / ROWS, allow_pickle=False, **arrays)
        (folder / REQUEST).write_text(json.dumps(request, default=str))
        command = [sys.executable, "-m", "alphafactory.models._child", str(folder)]
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise FitFailed(f"{family.name} fit timed out after {timeout:g} s") from None
        if done.returncode != 0 or not (folder / BUNDLE).exists():
            raise FitFailed(f"{family.name} fit failed in its child process: {_reason(done)}")
        return load_model(folder / BUNDLE)
