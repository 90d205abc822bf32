"""Model families behind one protocol (`ModelFamily`, `FittedModel`), their registry,
presets and the checksummed one-file bundle every saved model is stored in.

Example:
    >>> from alphafactory.models import family, preset_params
    >>> lightgbm = family("lightgbm")
    >>> params = preset_params("lightgbm", "conservative")  # doctest: +SKIP
"""

from __future__ import annotations

from alphafactory.models._base import (
    N_CLASSES,
    PRESETS,
    FamilyParams,
    FitBudget,
    FittedModel,
    GroupFit,
    History,
    ModelFamily,
    Sample,
    check_sample,
    require,
    validate_params,
)
from alphafactory.models._bundle import bundle_bytes, load_model, read_manifest, save_model
from alphafactory.models._outcome import FAILED, FitResult
from alphafactory.models._presets import chosen_preset, preset_params, presets_of
from alphafactory.models._registry import FAMILIES, family

__all__ = [
    "FAILED",
    "FAMILIES",
    "N_CLASSES",
    "PRESETS",
    "FamilyParams",
    "FitBudget",
    "FitResult",
    "FittedModel",
    "GroupFit",
    "History",
    "ModelFamily",
    "Sample",
    "bundle_bytes",
    "check_sample",
    "chosen_preset",
    "family",
    "load_model",
    "preset_params",
    "presets_of",
    "read_manifest",
    "require",
    "save_model",
    "validate_params",
]
