"""What the neural families (MLP, CNN1D, LSTM, Transformer) share: parameters, the fitted
model and the fit / load steps; each family's folder adds its network and its grids.

A fit standardises the rows with the training rows' own statistics (`ftrl.Scaler`: mean
and standard deviation of the finite values of `train.features`; missing values become 0,
the training mean), builds each row's network input (`sequences.row_inputs`: the row, or
for a lookback above 1 its causal window of matrix rows from `Sample.history`) and trains
with `training.train_network` (early stopping on the validation rows, seeded, CPU fallback).

Payload: `weights.safetensors` (the best epoch's float32 state dict, `storage.py`) and
`network.json` (the validated parameters, which rebuild the architecture; the lookback, the
feature count, the scaler's mean and scale, and the training record: epochs, validation
losses, the device and batch size actually used, threads, seed and torch version). The
fitted model is read back from these bytes, so what is saved is what predicts; a loaded
model runs on the CPU.

torch and safetensors are imported when a neural family fits or loads, never when the
registry is imported (`require` names the `torch` extra when they are missing).
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from alphafactory.errors import ConfigError, ModelError, first_line
from alphafactory.models._base import (
    FamilyParams,
    FitBudget,
    FittedModel,
    History,
    ModelFamily,
    Sample,
    require,
)
from alphafactory.models.ftrl.ftrl import Scaler, softmax
from alphafactory.models.neural.sequences import row_inputs
from alphafactory.tuning.space import SearchSpace, Value

EXTRA = "torch"
WEIGHTS = "weights.safetensors"
CONFIG = "network.json"
CONFIG_FORMAT = 1


class NeuralParams(FamilyParams):
    """Training parameters every neural family takes (its own add the architecture)."""

    learning_rate: float = Field(3e-3, gt=0, le=1)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(64, ge=1, le=65536)
    dropout: float = Field(0.1, ge=0, lt=1)
    clip_norm: float = Field(1.0, ge=0)
    device: Literal["cpu", "cuda"] = "cpu"


class SequenceParams(NeuralParams):
    """A sequence family's parameters: `lookback` matrix rows per window, the row's own last."""

    lookback: int = Field(16, ge=2, le=512)


class NeuralModel(FittedModel):
    """A trained network (eval mode, on the CPU), its scaler and its payload bytes."""

    def __init__(
        self,
        feature_names: tuple[str, ...],
        best_iteration: int,
        network: Any,
        scaler: Scaler,
        lookback: int,
        payload: Mapping[str, bytes],
        record: Mapping[str, Any],
    ) -> None:
        super().__init__(feature_names, best_iteration)
        self.network = network
        self.scaler = scaler
        self.lookback = int(lookback)
        self.payload = dict(payload)
        self.record = dict(record)

    def _predict(self, features: np.ndarray) -> np.ndarray:
        return self._scores(features, None)

    def _predict_history(self, features: np.ndarray, history: History) -> np.ndarray:
        return self._scores(features, history)

    def _scores(self, features: np.ndarray, history: History | None) -> np.ndarray:
        torch = require("torch", EXTRA)
        from alphafactory.models.neural.training import logits_of, torch_threads

        what = f"{self.family} prediction rows"
        inputs = row_inputs(self.scaler, features, history, self.lookback, what)
        with torch_threads(int(self.record.get("threads", 1))):
            logits = logits_of(self.network, torch.from_numpy(inputs))
        return softmax(logits.numpy().astype(np.float64))

    def files(self) -> dict[str, bytes]:
        return dict(self.payload)


class NeuralFamily(ModelFamily):
    """Base of the neural families: subclasses name themselves, their parameter model, model
    class, grids and network."""

    artifact_format = "torch-safetensors"
    extra = EXTRA
    model_class: ClassVar[type[NeuralModel]]
    #: The searched grids (ascending), the same for every tune stage.
    grids: ClassVar[Mapping[str, tuple[Value, ...]]]

    @abstractmethod
    def network(self, chosen: Mapping[str, Any], n_features: int) -> Any:
        """The untrained torch module for validated parameters `chosen` (torch is imported
        here, lazily)."""

    def lookback(self, chosen: Mapping[str, Any]) -> int:
        """Matrix rows per input: the parameters' `lookback`, 1 for a family without one."""
        return int(chosen.get("lookback", 1))

    def fit(
        self, train: Sample, valid: Sample, params: Mapping[str, Any], budget: FitBudget
    ) -> NeuralModel:
        started = time.perf_counter()
        chosen = self.checked(train, valid, params)
        torch = require("torch", EXTRA)
        require("safetensors", EXTRA)
        from alphafactory.models.neural.storage import state_bytes
        from alphafactory.models.neural.training import Rows, Settings, train_network

        lookback = self.lookback(chosen)
        scaler = Scaler.fit(train.features)  # the training rows only
        fit_rows, valid_rows = (
            Rows(
                row_inputs(scaler, sample.features, sample.history, lookback,
                           f"{self.name} {side} rows"),
                sample.labels, sample.weights,
            )
            for sample, side in ((train, "training"), (valid, "validation"))
        )  # fmt: skip
        settings = Settings(
            chosen["learning_rate"], chosen["weight_decay"], chosen["batch_size"],
            chosen["clip_norm"], chosen["device"],
        )  # fmt: skip
        n_features = len(train.feature_names)
        trained = train_network(
            lambda: self.network(chosen, n_features), fit_rows, valid_rows, settings, budget,
            started=started, what=self.name,
        )  # fmt: skip
        config = {
            "format": CONFIG_FORMAT,
            "family": self.name,
            "params": chosen,
            "lookback": lookback,
            "n_features": n_features,
            "scaler": {"mean": scaler.mean.tolist(), "scale": scaler.scale.tolist()},
            "training": {
                "epochs": trained.epochs,
                "best_epoch": trained.best_epoch,
                "valid_log_loss": trained.valid_loss,
                "epoch_losses": trained.epoch_losses,
                "device": trained.device,
                "batch_size": trained.batch_size,
                "threads": budget.threads,
                "seed": budget.seed,
                "torch": str(torch.__version__),
            },
        }
        payload = {
            WEIGHTS: state_bytes(trained.state),
            CONFIG: json.dumps(config, indent=1, sort_keys=True, allow_nan=False).encode(),
        }
        manifest = {
            "feature_names": list(train.feature_names),
            "best_iteration": trained.best_epoch,
        }
        return self.load(payload, manifest)

    def load(self, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> NeuralModel:
        torch = require("torch", EXTRA)
        require("safetensors", EXTRA)
        from alphafactory.models.neural.storage import read_state

        what = f"{self.name} bundle"
        names = tuple(str(name) for name in manifest.get("feature_names", ()))
        for name in (WEIGHTS, CONFIG):
            if name not in files:
                raise ModelError(f"{what}: {name} is missing; retrain the model")
        config = _read_config(files[CONFIG], what)
        try:
            chosen = self.validate(config["params"])
        except ConfigError as exc:
            raise ModelError(f"{what}: {CONFIG} holds invalid parameters ({exc})") from None
        try:
            mean = np.asarray(config["scaler"]["mean"], dtype=np.float64)
            scale = np.asarray(config["scaler"]["scale"], dtype=np.float64)
            lookback, n_features = int(config["lookback"]), int(config["n_features"])
        except (TypeError, ValueError):
            lookback, n_features, mean, scale = -1, -1, np.zeros(0), np.zeros(0)
        if (
            config["family"] != self.name
            or n_features != len(names)
            or mean.shape != (len(names),)
            or scale.shape != (len(names),)
            or lookback != self.lookback(chosen)
        ):
            raise ModelError(
                f"{what}: {CONFIG} does not describe a {self.name} network on the manifest's "
                f"{len(names)} features; the bundle was altered, retrain it"
            )
        with torch.random.fork_rng(devices=[]):  # building draws initial weights: not ours
            network = self.network(chosen, len(names))
        try:
            network.load_state_dict(read_state(files[WEIGHTS], f"{what}: {WEIGHTS}"), strict=True)
        except RuntimeError as exc:
            raise ModelError(
                f"{what}: {WEIGHTS} does not fit the network in {CONFIG} "
                f"({first_line(exc)}); retrain the model"
            ) from None
        network.eval()
        best = int(manifest.get("best_iteration", 0))
        record = {**config["training"], "threads": int(config["training"].get("threads", 1))}
        return self.model_class(names, best, network, Scaler(mean, scale), lookback, files, record)

    def search_space(self, stage: int) -> SearchSpace:
        """The family's small ascending grids, the same for every stage (stages 3-4 narrow
        them, `tuning.space`)."""
        return SearchSpace(dict(self.grids))


def _read_config(payload: bytes, what: str) -> dict[str, Any]:
    try:
        config = json.loads(bytes(payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{what}: {CONFIG} is not JSON ({exc}); retrain the model") from None
    keys = ("format", "family", "params", "lookback", "n_features", "scaler", "training")
    if (
        not isinstance(config, dict)
        or any(key not in config for key in keys)
        or config["format"] != CONFIG_FORMAT
        or not isinstance(config["scaler"], dict)
        or not {"mean", "scale"} <= set(config["scaler"])
        or not isinstance(config["training"], dict)
        or not isinstance(config["params"], dict)
    ):
        raise ModelError(
            f"{what}: {CONFIG} is not a format-{CONFIG_FORMAT} network description; "
            "retrain the model"
        )
    return config
