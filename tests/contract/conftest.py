"""Shared data of the family contract suite: a learnable three-class problem, small and seeded."""

from __future__ import annotations

import numpy as np
import pytest

from alphafactory.models import FAMILIES, FitBudget, ModelFamily, Sample

N_FEATURES = 6
NAMES = tuple(f"f{i}" for i in range(N_FEATURES))


HORIZON = np.timedelta64(5, "h")


def make_sample(rows: int, seed: int, start: str = "2024-01-01") -> Sample:
    """Class 1 when f0 (and a little f1) is high, 2 when low, 0 between, with label noise;
    f5 has NaNs. Hourly events from `start`, each label known 5 hours later."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    score = features[:, 0] + 0.5 * features[:, 1] + rng.normal(scale=0.6, size=rows)
    labels = np.where(score > 0.6, 1, np.where(score < -0.6, 2, 0)).astype(np.int32)
    features[rng.random(rows) < 0.05, 5] = np.nan
    move = (score / 0.6).astype(np.float64)  # in barrier units: +-1 is a barrier
    stamps = np.datetime64(start, "us") + np.arange(rows) * np.timedelta64(1, "h")
    return Sample(
        features, labels, NAMES, timestamps=stamps, label_ends=stamps + HORIZON,
        aux={"move": move},
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


@pytest.fixture(params=sorted(FAMILIES), scope="session")
def family(request: pytest.FixtureRequest) -> ModelFamily:
    return FAMILIES[request.param]
