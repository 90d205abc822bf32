"""What one variant fit produced, whichever family and executor made it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alphafactory.models._base import FittedModel

#: Statuses of a fit that produced no model.
TOO_FEW_ROWS = "too_few_rows"
SINGLE_CLASS = "single_class"
FAILED = "failed"


@dataclass
class FitResult:
    """One variant's fit: status, validation AP, sizes, time, and (when kept) the model with
    its validation probabilities. `reason` says why a failed fit failed."""

    variant_id: str
    status: str
    family: str
    average_precision: float = math.nan
    best_iteration: int = 0
    n_train: int = 0
    n_valid: int = 0
    seconds: float = 0.0
    reason: str = ""
    model: FittedModel | None = field(default=None, repr=False)
    valid_probabilities: np.ndarray | None = field(default=None, repr=False)
    valid_labels: np.ndarray | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        summary = {
            "variant_id": self.variant_id,
            "family": self.family,
            "status": self.status,
            "average_precision": self.average_precision,
            "best_iteration": self.best_iteration,
            "n_train": self.n_train,
            "n_valid": self.n_valid,
            "seconds": round(self.seconds, 3),
        }
        if self.reason:
            summary["reason"] = self.reason
        return summary
