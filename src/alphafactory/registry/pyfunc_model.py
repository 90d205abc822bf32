"""`BundleModel`: the `mlflow.pyfunc.PythonModel` of every registered version (see
`alphafactory.registry.pyfunc`). Only MLflow imports this module, through the version's
`pyfunc_entry.py`, when a user loads a model with `mlflow.pyfunc.load_model`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from alphafactory.errors import ModelError
from alphafactory.registry.pyfunc import CONFIG_BUNDLE, CONFIG_OUTPUTS, CONFIG_SHA256

if TYPE_CHECKING:
    from alphafactory.models import FittedModel


class BundleModel(PythonModel):
    """Class probabilities of a registered alphafactory bundle for rows of feature columns.

    Args:
        folder: the version's downloaded `model/` folder, which holds the bundle file.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._model: FittedModel | None = None
        self._outputs: list[str] = []

    def load_context(self, context: Any) -> None:
        """Verify the bundle against the sha256 it was registered with, then load it."""
        from alphafactory.models import load_model

        config = dict(context.model_config or {})
        bundle = self.folder / str(config[CONFIG_BUNDLE])
        self._model = load_model(bundle, str(config[CONFIG_SHA256]))
        self._outputs = [str(name) for name in config[CONFIG_OUTPUTS]]

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """One row of class probabilities per input row; columns beyond the model's features
        are ignored, a missing feature column is an error."""
        model = self._model
        if model is None:
            raise ModelError("the model was not loaded: load it with mlflow.pyfunc.load_model")
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        missing = [name for name in model.feature_names if name not in frame.columns]
        if missing:
            raise ModelError(
                f"input lacks {len(missing)} of the model's {len(model.feature_names)} feature "
                f"columns, e.g. {missing[0]!r}: pass a frame with every column of the signature"
            )
        values = frame[list(model.feature_names)].to_numpy(dtype=np.float64)
        return pd.DataFrame(model.predict_proba(values), columns=self._outputs, index=frame.index)
