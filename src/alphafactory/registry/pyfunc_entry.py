"""MLflow "models from code" entry of a registered version (`alphafactory.registry.pyfunc`).

MLflow copies this file into the version's `model/` folder and runs it on
`mlflow.pyfunc.load_model`; the bundle lies beside it, in the same folder.
"""

from pathlib import Path

import mlflow.models

from alphafactory.registry.pyfunc_model import BundleModel

mlflow.models.set_model(BundleModel(Path(__file__).resolve().parent))
