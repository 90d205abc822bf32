"""Shared data of the family contract suite: a learnable three-class problem, small and seeded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from alphafactory.models import (
    FAMILIES,
    FitBudget,
    History,
    ModelFamily,
    Sample,
    preset_params,
)

N_FEATURES = 6
NAMES = tuple(f"f{i}" for i in range(N_FEATURES))


HORIZON = np.timedelta64(5, "h")


def make_sample(rows: int, seed: int, start: str = "2024-01-01") -> Sample:
    """Class 1 when f0 (and a little f1) is high, 2 when low, 0 between, with label noise;
    f5 has NaNs. Hourly events from `start`, each label known 5 hours later; every event is
    a row of its own matrix (the history sequence families read their windows from)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    score = features[:, 0] + 0.5 * features[:, 1] + rng.normal(scale=0.6, size=rows)
    labels = np.where(score > 0.6, 1, np.where(score < -0.6, 2, 0)).astype(np.int32)
    features[rng.random(rows) < 0.05, 5] = np.nan
    move = (score / 0.6).astype(np.float64)  # in barrier units: +-1 is a barrier
    stamps = np.datetime64(start, "us") + np.arange(rows) * np.timedelta64(1, "h")
    return Sample(
        features, labels, NAMES, timestamps=stamps, label_ends=stamps + HORIZON,
        aux={"move": move}, history=History(features, np.arange(rows), np.arange(N_FEATURES)),
    )  # fmt: skip


@pytest.fixture(scope="session")
def train_sample() -> Sample:
    return make_sample(1200, seed=1)


@pytest.fixture(scope="session")
def valid_sample() -> Sample:
    return make_sample(400, seed=2, start="2024-03-01")


@pytest.fixture(scope="session")
def test_sample() -> Sample:
    return make_sample(600, seed=3, start="2024-04-01")


BUDGET = FitBudget(rounds=60, early_stopping=10, threads=1, seed=7)

#: The contract table: per family, parameters the suite puts on top of the preset of every
#: fit it makes (the presets themselves are checked as they are). The neural families get
#: tiny networks and short windows, so each fit takes about a second on 2 cores.
CONTRACT_OVERRIDES: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": 16, "batch_size": 256, "learning_rate": 0.02},
    "cnn1d": {"lookback": 4, "channels": 8, "layers": 1, "batch_size": 256, "learning_rate": 0.02},
    "lstm": {"lookback": 4, "hidden": 8, "layers": 1, "batch_size": 256, "learning_rate": 0.02},
    "transformer": {"lookback": 4, "d_model": 8, "heads": 2, "layers": 1, "feedforward": 16,
                    "batch_size": 256, "learning_rate": 0.02},
}  # fmt: skip


def contract_params(name: str, preset: str | None = None) -> dict[str, Any]:
    """The validated parameters of `name`'s preset with the contract table's row on top."""
    return preset_params(name, preset, CONTRACT_OVERRIDES.get(name))


@pytest.fixture(params=sorted(FAMILIES), scope="session")
def family(request: pytest.FixtureRequest) -> ModelFamily:
    return FAMILIES[request.param]
