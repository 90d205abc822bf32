"""A family that fails on purpose, for the process-isolation tests (not registered)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from typing import Any, Literal

from alphafactory.models import FamilyParams, FitBudget, FittedModel, ModelFamily, Sample
from alphafactory.tuning.space import SearchSpace


class CrashingParams(FamilyParams):
    mode: Literal["exit", "kill", "sleep", "memory", "raise"] = "exit"


class CrashingFamily(ModelFamily):
    """`fit` exits, kills itself, hangs, allocates without bound or raises, by `mode`."""

    name = "crashing"
    artifact_format = "none"
    params = CrashingParams

    def fit(
        self, train: Sample, valid: Sample, params: Mapping[str, Any], budget: FitBudget
    ) -> FittedModel:
        mode = self.validate(params)["mode"]
        if mode == "exit":
            os._exit(3)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "sleep":
            time.sleep(60)
        if mode == "memory":
            hoard = []
            while True:
                hoard.append(bytearray(64 << 20))
        raise RuntimeError("crashing family: asked to raise")

    def load(self, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> FittedModel:
        raise NotImplementedError

    def search_space(self, stage: int) -> SearchSpace:
        return SearchSpace({"mode": ("exit",)})  # type: ignore[dict-item]
