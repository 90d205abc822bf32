"""The model-family protocol: what every family provides, and the fitted model it returns.

Every family solves the same task: for an event row (the feature vector at a swing event),
the probabilities of the three classes `neither`, `breakout`, `reversion`. A family is a
stateless object in the name registry (`models/_registry.py`); `fit` returns a
`FittedModel`, whose `files()` are stored in a checksummed bundle (`models/_bundle.py`) and
read back by the family's `load`. Vendor libraries are imported inside a family's own folder
only, lazily, so a missing optional extra fails with one line when that family is used.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from alphafactory.errors import ConfigError, DataError, ModelError
from alphafactory.tuning.space import SearchSpace

N_CLASSES = 3
PRESETS = ("conservative", "balanced", "aggressive")


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or fail with one line naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelError(
            f"{module} is not installed ({exc}); install it with "
            f"`pip install 'alphafactory[{extra}]'`"
        ) from None


@dataclass(frozen=True)
class History:
    """The feature matrix that rows were taken from, for families that also read the rows
    before each one (sequence families): `values` (every matrix row in time order × every
    matrix column, held by reference, not copied), `rows` (each row's index in `values`) and
    `columns` (the rows' feature columns in `values`, in feature order), so that row i is
    `values[rows[i], columns]`."""

    values: np.ndarray
    rows: np.ndarray
    columns: np.ndarray

    def take(self, index: np.ndarray) -> History:
        """The history of the rows at positions `index` (e.g. a subset of a sample)."""
        return History(self.values, np.asarray(self.rows)[index], self.columns)


@dataclass(frozen=True)
class Sample:
    """Event rows of one variant, in time order: features (rows × columns), class labels 0-2,
    and what families that look beyond the label need.

    Attributes:
        timestamps: each event's bar time (datetime64[us]); families that fit on their own
            out-of-fold predictions (stacking, meta-learning) cut folds on it.
        label_ends: when each event's label became known (datetime64[us]); such folds purge
            every training row whose label ends at or after the fold's first event.
        aux: per-row arrays by name. `"move"`: the event's realised forward move in units of
            the variant's barrier, positive towards the breakout barrier (+1 reaches it,
            -1 reaches the reversion barrier), taken at the first touch or the horizon's end.
        history: the matrix the rows come from (`History`); sequence families
            (`FittedModel.lookback` > 1) build each row's window of preceding matrix rows
            from it and refuse a sample without it.
    """

    features: np.ndarray
    labels: np.ndarray
    feature_names: tuple[str, ...]
    weights: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    label_ends: np.ndarray | None = None
    aux: Mapping[str, np.ndarray] = field(default_factory=dict)
    history: History | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class FitBudget:
    """How much one fit may spend: rounds (trees, epochs or passes), early-stopping patience
    on the validation loss, wall-clock seconds (None: no limit), threads and the seed."""

    rounds: int = 500
    early_stopping: int = 50
    seconds: float | None = None
    threads: int = 1
    seed: int = 42


def check_sample(sample: Sample, what: str, *, need_classes: int = 2) -> None:
    """Refuse rows a family cannot learn from or be scored on, naming the problem."""
    features, labels = sample.features, sample.labels
    if features.ndim != 2 or features.shape[0] != len(labels):
        raise DataError(
            f"{what}: features of shape {features.shape} do not match {len(labels)} labels"
        )
    if features.shape[1] != len(sample.feature_names):
        raise DataError(
            f"{what}: {features.shape[1]} feature columns but {len(sample.feature_names)} names"
        )
    if len(labels) == 0:
        raise DataError(f"{what}: no rows")
    bad = set(np.unique(labels).tolist()) - set(range(N_CLASSES))
    if bad:
        raise DataError(f"{what}: labels {sorted(bad)} outside 0..{N_CLASSES - 1}")
    if len(np.unique(labels)) < need_classes:
        raise DataError(
            f"{what}: only class {int(labels[0])} present; a classifier needs at least "
            f"{need_classes} classes (pick a variant with more events)"
        )
    empty = np.flatnonzero(np.all(np.isnan(features), axis=0))
    if len(empty):
        raise DataError(
            f"{what}: feature '{sample.feature_names[int(empty[0])]}' is NaN in every row; "
            "drop it (prepare's hygiene removes such columns)"
        )


class FittedModel(ABC):
    """A trained model of one family: predicts class probabilities for feature rows.

    Attributes:
        lookback: matrix rows one prediction reads, ending at the row itself (1: the row
            only). A model with `lookback` > 1 predicts from `predict_proba`'s `history`.
    """

    family: ClassVar[str]
    lookback: int = 1

    def __init__(self, feature_names: tuple[str, ...], best_iteration: int = 0) -> None:
        self.feature_names = tuple(feature_names)
        self.best_iteration = int(best_iteration)

    def predict_proba(self, features: np.ndarray, history: History | None = None) -> np.ndarray:
        """Probabilities (rows × 3, each row summing to 1) for rows in `feature_names` order;
        `history` (the matrix the rows come from) is read by models with `lookback` > 1 only."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != len(self.feature_names):
            raise ModelError(
                f"{self.family} model expects {len(self.feature_names)} feature columns, "
                f"got an array of shape {features.shape}"
            )
        if len(features) == 0:
            return np.zeros((0, N_CLASSES))
        scores = (
            self._predict(features)
            if history is None or self.lookback == 1
            else self._predict_history(features, history)
        )
        raw = np.asarray(scores, dtype=np.float64).reshape(-1, N_CLASSES)
        raw = np.clip(raw, 0.0, None)
        sums = raw.sum(axis=1)
        off = np.abs(sums - 1.0) > 1e-9  # softmax outputs are left bit-for-bit as they are
        raw[off] /= np.where(sums[off] > 0, sums[off], 1.0)[:, None]
        return raw

    @abstractmethod
    def _predict(self, features: np.ndarray) -> np.ndarray:
        """Class scores for validated float32 rows; normalised by `predict_proba`."""

    def _predict_history(self, features: np.ndarray, history: History) -> np.ndarray:
        """Class scores of rows read with their `history`; only models with `lookback` > 1
        override it (the default reads the rows alone)."""
        return self._predict(features)

    def feature_importance(self) -> np.ndarray | None:
        """Importance per feature (e.g. total gain), or None when the family has none."""
        return None

    @abstractmethod
    def files(self) -> dict[str, bytes]:
        """The model's payload files, in the family's native safe format (never pickle)."""


class ModelFamily(ABC):
    """One kind of model: its name, artifact format, presets, search spaces, fit and load.

    Attributes:
        name: registry name (also the registry's `model_type`).
        role: `classifier` (fits on features) or `meta` (fits on other families' outputs).
        artifact_format: what `FittedModel.files()` holds, e.g. `lightgbm-text`.
        extra: the pip extra providing the family's library (None: always installed).
        params: pydantic model of the family's parameters (unknown names are refused).
    """

    name: ClassVar[str]
    role: ClassVar[str] = "classifier"
    artifact_format: ClassVar[str]
    extra: ClassVar[str | None] = None
    params: ClassVar[type[BaseModel]]

    @abstractmethod
    def fit(
        self, train: Sample, valid: Sample, params: Mapping[str, Any], budget: FitBudget
    ) -> FittedModel:
        """Fit on `train`, early-stopping (where the family can) on `valid`."""

    @abstractmethod
    def load(self, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> FittedModel:
        """Rebuild a fitted model from its verified payload files and bundle manifest."""

    @abstractmethod
    def search_space(self, stage: int) -> SearchSpace:
        """The grids tune stage `stage` (2-4) searches for this family."""

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` checked against the family's parameter model, defaults filled in."""
        return validate_params(self, params)

    def group_fitter(
        self, trains: Sequence[Sample], params: Mapping[str, Any], budget: FitBudget
    ) -> GroupFit | None:
        """A `fit` that shares work across several variants of one group (whose training rows
        are `trains`, in time order; rows with the same timestamp share their features), e.g.
        one binning; None (the default) when the family has nothing to share."""
        return None

    def checked(self, train: Sample, valid: Sample, params: Mapping[str, Any]) -> dict[str, Any]:
        """The first step of every `fit`: refuse rows it cannot learn from (training) or be
        early-stopped on (validation), and return the validated parameters."""
        check_sample(train, f"{self.name} training rows")
        check_sample(valid, f"{self.name} validation rows", need_classes=1)
        return self.validate(params)


class FamilyParams(BaseModel):
    """Base of every family's parameter model: unknown parameters are an error."""

    model_config = ConfigDict(extra="forbid")


def validate_params(family: ModelFamily, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` checked by the family's parameter model (defaults filled in); an unknown or
    invalid parameter fails with one line naming it and what is allowed."""
    return validate_with(family.name, family.params, params)


def validate_with(name: str, model: type[BaseModel], params: Mapping[str, Any]) -> dict[str, Any]:
    """`validate_params` for a family known by its name and parameter model only."""
    try:
        return model.model_validate(dict(params)).model_dump()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "?"
        if error["type"] == "extra_forbidden":
            raise ConfigError(
                f"{name} parameter '{field}' is unknown; allowed: {', '.join(model.model_fields)}"
            ) from None
        raise ConfigError(
            f"{name} parameter '{field}'={error.get('input')!r}: {error['msg']}"
        ) from None


#: fit(train, valid, params, budget) of one variant through a family's shared group structure.
GroupFit = Callable[[Sample, Sample, Mapping[str, Any], FitBudget], FittedModel]
