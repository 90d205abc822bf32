"""FTRL-Proximal multinomial logistic regression behind the family protocol.

Training (`ftrl.py` has the update): the rows are standardised with the training rows' own
statistics (missing values become 0, the training mean), then streamed in time order in
mini-batches of `batch_size`. One epoch is one pass over the training rows; `budget.rounds`
caps the passes. After each pass the validation log loss is measured; the best pass's weights
are kept and training stops after `budget.early_stopping` passes without improvement.
`budget.seconds` is checked between mini-batches: when it runs out, the pass in progress ends
there and is scored like a full one. Nothing is random, so fits are deterministic.

Payload: `weights.npz` (numpy's npz of plain float arrays `w`, `z`, `n`, `mean`, `scale`,
read with `allow_pickle=False`) and `ftrl.json` (the hyper-parameters and the training
record as JSON scalars).
"""

from __future__ import annotations

import io as stdio
import json
import time
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from alphafactory.errors import ModelError
from alphafactory.models._base import (
    N_CLASSES,
    FamilyParams,
    FitBudget,
    FittedModel,
    ModelFamily,
    Sample,
)
from alphafactory.models.ftrl.ftrl import FTRLState, Hyper, Scaler, log_loss, one_hot, softmax
from alphafactory.tuning.space import SearchSpace

WEIGHTS = "weights.npz"
SCALARS = "ftrl.json"
_ARRAYS = ("w", "z", "n", "mean", "scale")


class FTRLParams(FamilyParams):
    """The parameters an FTRL preset or override may set (McMahan et al. 2013 notation)."""

    alpha: float = Field(0.1, gt=0, le=100)
    beta: float = Field(1.0, ge=0, le=1000)
    l1: float = Field(1.0, ge=0)
    l2: float = Field(1.0, ge=0)
    batch_size: int = Field(32, ge=1, le=65536)


class FTRLModel(FittedModel):
    """Standardisation statistics and the best pass's FTRL weights (and accumulators)."""

    family = "ftrl"

    def __init__(
        self,
        feature_names: tuple[str, ...],
        best_iteration: int,
        scaler: Scaler,
        state: FTRLState,
        weights: np.ndarray,
        record: Mapping[str, Any],
    ) -> None:
        super().__init__(feature_names, best_iteration)
        self.scaler = scaler
        self.state = state
        self.weights = weights
        self.record = dict(record)

    def _predict(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.scaler.design(features) @ self.weights)

    def feature_importance(self) -> np.ndarray:
        """Sum over classes of |w| per feature (weights act on standardised features)."""
        return np.abs(self.weights[:-1]).sum(axis=1)

    def files(self) -> dict[str, bytes]:
        buffer = stdio.BytesIO()
        np.savez(
            buffer,
            w=self.weights,
            z=self.state.z,
            n=self.state.n,
            mean=self.scaler.mean,
            scale=self.scaler.scale,
        )
        scalars = json.dumps(self.record, indent=1, sort_keys=True).encode()
        return {WEIGHTS: buffer.getvalue(), SCALARS: scalars}


def _batches(rows: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, rows)) for start in range(0, rows, size)]


class FTRLFamily(ModelFamily):
    """Online multinomial logistic regression with per-coordinate FTRL-Proximal updates."""

    name = "ftrl"
    artifact_format = "ftrl-npz"
    extra = None
    params = FTRLParams

    def fit(
        self, train: Sample, valid: Sample, params: Mapping[str, Any], budget: FitBudget
    ) -> FTRLModel:
        started = time.perf_counter()
        chosen = self.checked(train, valid, params)
        hyper = Hyper(chosen["alpha"], chosen["beta"], chosen["l1"], chosen["l2"])
        scaler = Scaler.fit(train.features)
        design, onehot = scaler.design(train.features), one_hot(train.labels)
        valid_design = scaler.design(valid.features)
        row_weights = None if train.weights is None else np.asarray(train.weights, np.float64)
        valid_weights = None if valid.weights is None else np.asarray(valid.weights, np.float64)
        state = FTRLState(design.shape[1], hyper)
        best = (np.inf, 0, state.copy())
        batches = _batches(len(design), chosen["batch_size"])
        passes, out_of_time, losses = 0, False, []
        while passes < max(1, budget.rounds) and not out_of_time:
            for batch in batches:
                state.step(
                    design[batch],
                    onehot[batch],
                    None if row_weights is None else row_weights[batch],
                )
                if budget.seconds is not None and time.perf_counter() - started > budget.seconds:
                    out_of_time = True
                    break
            passes += 1
            loss = log_loss(softmax(valid_design @ state.weights()), valid.labels, valid_weights)
            losses.append(loss)
            if loss < best[0]:
                best = (loss, passes, state.copy())
            elif passes - best[1] >= budget.early_stopping:
                break
        loss, best_pass, kept = best
        if best_pass == 0:  # only when the validation loss was never finite
            best_pass, kept = passes, state
        record = {
            **chosen,
            "passes": passes,
            "best_pass": best_pass,
            "valid_log_loss": float(loss) if np.isfinite(loss) else None,
            "pass_losses": [float(value) if np.isfinite(value) else None for value in losses],
            "n_features": len(train.feature_names),
            "n_classes": N_CLASSES,
        }
        return FTRLModel(train.feature_names, best_pass, scaler, kept, kept.weights(), record)

    def load(self, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> FTRLModel:
        names = tuple(str(name) for name in manifest.get("feature_names", ()))
        try:
            record = json.loads(files[SCALARS].decode("utf-8"))
            with np.load(stdio.BytesIO(files[WEIGHTS]), allow_pickle=False) as archive:
                arrays = {key: np.asarray(archive[key], dtype=np.float64) for key in _ARRAYS}
        except KeyError as exc:
            raise ModelError(f"ftrl bundle: payload lacks {exc}; retrain the model") from None
        except (ValueError, OSError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
            raise ModelError(
                f"ftrl bundle: {WEIGHTS} / {SCALARS} are not an FTRL model ({exc}); "
                "retrain the model"
            ) from None
        inputs = len(names) + 1
        shapes: dict[str, tuple[int, ...]] = {key: (inputs, N_CLASSES) for key in ("w", "z", "n")}
        shapes |= {"mean": (len(names),), "scale": (len(names),)}
        wrong = [key for key, shape in shapes.items() if arrays[key].shape != shape]
        if wrong or not isinstance(record, dict):
            raise ModelError(
                f"ftrl bundle: arrays {wrong or list(_ARRAYS)} do not fit {len(names)} features "
                "and 3 classes; retrain the model"
            )
        try:
            hyper = Hyper(*(float(record[key]) for key in ("alpha", "beta", "l1", "l2")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"ftrl bundle: {SCALARS} lacks {exc}; retrain the model") from None
        state = FTRLState(inputs, hyper)
        state.z, state.n = arrays["z"], arrays["n"]
        scaler = Scaler(arrays["mean"], arrays["scale"])
        best = int(manifest.get("best_iteration", 0))
        return FTRLModel(names, best, scaler, state, arrays["w"], record)

    def search_space(self, stage: int) -> SearchSpace:
        """Learning rate and both penalties, for every stage (later stages narrow them)."""
        return SearchSpace(
            {
                "alpha": (0.03, 0.1, 0.3),
                "l1": (0.0, 0.1, 1.0),
                "l2": (0.0, 1.0, 10.0),
            }
        )
