"""The child side of `models._isolation.fit_isolated`: read the request, fit, write a bundle.

Run as `python -m alphafactory.models._child <folder>`; exits non-zero with the error on
stderr when the fit fails.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
from pathlib import Path

import numpy as np

from alphafactory.models._base import FitBudget, ModelFamily
from alphafactory.models._bundle import save_model
from alphafactory.models._isolation import BUNDLE, REQUEST, ROWS, read_sample


def _family(path: str) -> ModelFamily:
    module, _, name = path.partition(":")
    family = getattr(importlib.import_module(module), name)()
    if not isinstance(family, ModelFamily):
        raise TypeError(f"{path} is not a ModelFamily")
    return family


def main(folder: Path) -> None:
    request = json.loads((folder / REQUEST).read_text())
    if request.get("memory_mb"):
        limit = int(request["memory_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    family = _family(request["family_class"])
    names = tuple(request["feature_names"])
    with np.load(folder / ROWS, allow_pickle=False) as stored:
        rows = {key: stored[key] for key in stored.files}
    model = family.fit(
        read_sample(rows, "train", names),
        read_sample(rows, "valid", names),
        request["params"],
        FitBudget(**request["budget"]),
    )
    save_model(model, family, folder / BUNDLE)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
