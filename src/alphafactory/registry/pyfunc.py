"""The MLflow pyfunc flavor of a registered version, so MLflow's own tools can use it:

    mlflow.pyfunc.load_model("models:/alphafactory.<group>@champion").predict(frame)

returns the three class probabilities of each row of `frame` (a pandas DataFrame with the
model's feature columns). The version's `model/` folder holds the bundle file exactly where
it always was (`model/<artifact_file>`, the file `ModelRegistry.download` verifies), beside
MLflow's `MLmodel`, signature, input example and `pyfunc_entry.py`: the model is logged "from
code" (no pickle); that file builds a `pyfunc_model.BundleModel`, which loads the bundle
through `alphafactory.models.load_model` (checksum first), so each family's vendor library
stays inside its own folder and is imported only by the family that needs it.

This module names the entry file by path and never imports it nor `alphafactory.models`:
the registry is imported by `alphafactory.models` (checksums), so the loader side lives in
modules only MLflow loads.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ENTRY_FILE = Path(__file__).with_name("pyfunc_entry.py")
"""The models-from-code file MLflow copies into every `model/` folder and runs at load."""

# Keys of the flavor's model_config (the MLmodel file's `python_function.config`).
CONFIG_BUNDLE = "bundle"
CONFIG_SHA256 = "sha256"
CONFIG_OUTPUTS = "outputs"


@dataclass(frozen=True)
class PyfuncSpec:
    """What the pyfunc flavor of a version needs beside the bundle and its feature list.

    Attributes:
        outputs: the columns `predict` returns, one class probability each, in class order.
        example: a few real input rows, feature name -> values (the MLflow input example).
        requirements: pip requirements of an environment that can load the model (given,
            so MLflow does not load the model in a subprocess to guess them).
    """

    outputs: tuple[str, ...]
    example: Mapping[str, Sequence[float]]
    requirements: tuple[str, ...]


def save_pyfunc_folder(
    folder: Path, bundle: Path, sha256: str, features: Sequence[str], spec: PyfuncSpec
) -> Path:
    """Write the `model/` folder of a version into `folder` (which must not exist yet): the
    MLflow pyfunc files (MLmodel with signature and model config, input example, the entry
    file, requirements) and the bundle itself under its own name."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in features]),
        outputs=Schema([ColSpec("double", name) for name in spec.outputs]),
    )
    example = pd.DataFrame(
        {name: np.asarray(spec.example[name], dtype=np.float64) for name in features}
    )
    chatty = logging.getLogger("mlflow")  # "validating input example …" once per version
    level = chatty.level
    chatty.setLevel(max(level, logging.WARNING))
    try:
        mlflow.pyfunc.save_model(
            path=str(folder),
            python_model=str(ENTRY_FILE),
            model_config={
                CONFIG_BUNDLE: bundle.name,
                CONFIG_SHA256: sha256,
                CONFIG_OUTPUTS: list(spec.outputs),
            },
            signature=signature,
            input_example=example,
            pip_requirements=list(spec.requirements),
        )
    finally:
        chatty.setLevel(level)
    shutil.copyfile(bundle, folder / bundle.name)
    return folder
