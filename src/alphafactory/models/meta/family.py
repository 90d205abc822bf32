"""MetaLearning behind the family protocol: a logistic meta-learner over the purged
out-of-fold probabilities of other registered families, plus context features.

Bases: the registry's classifier families named in `base_families` (default LightGBM, trees,
and FTRL, an online linear model: cheap, and wrong in different places than trees); never a
`meta`-role family (this one or `ensemble`), so stacking cannot recurse. Each is fitted with
`preset_params(base, base_preset)` (default `balanced`) plus `base_overrides[base]`.

Fit: for every base, (1) a fit on all training rows, early-stopping on `valid` as that family
does, and (2) its purged walk-forward out-of-fold probabilities (`models/_oof.py`; the fold
fits early-stop on the same `valid`, which lies after the training rows and shares no label
window with the rows they predict). The meta-learner sees, per row, the bases' floored
log-probabilities, the standardised `context_features` (NaN: the training median) and, with
`regime_feature`, a low/mid/high one-hot of that feature cut at its training-row terciles
(NaN: no regime) with the log-probabilities times the low and the high indicator, so the
weight given to each base may change with the regime (mid is the reference).

The meta-learner is a multinomial L2 logistic regression rather than gradient-boosted trees:
it fits on the out-of-fold rows only (a fraction of a variant's already few events), its
inputs are few and close to linear in the log-odds (a weighted log-linear pool of the
bases), and it stays calibrated and deterministic.

Budget: `seconds` is shared among every base fit in proportion to its training rows
(`TimeShare`); `rounds`, `early_stopping`, `threads` and `seed` pass on to the bases.

Payload: `base-<i>-<family>.zip`, the bases refitted on all training rows as ordinary bundles
(each verified by `bundle_from_bytes` on load, against its own manifest and the digest
`meta.json` records), `meta.json` (bases, context columns, medians, scales, terciles) and
`learner.skops` (the logistic regression; skops, trusting no extra type).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from alphafactory.errors import ConfigError, ModelError
from alphafactory.models._base import (
    FamilyParams,
    FitBudget,
    FittedModel,
    ModelFamily,
    Sample,
    require,
)
from alphafactory.models._bundle import bundle_bytes, bundle_from_bytes
from alphafactory.models._oof import TimeShare, fold_work, out_of_fold
from alphafactory.models.ensemble import _skops
from alphafactory.models.ensemble.family import (
    as_float32,
    column_medians,
    fit_meta_learner,
    impute,
    proba3,
    stack_inputs,
)
from alphafactory.tuning.space import SearchSpace

LAYOUT = "meta.json"
LEARNER = "learner.skops"
LAYOUT_FORMAT = 1
DEFAULT_BASES = ("lightgbm", "ftrl")
_RESERVE = 0.1


class MetaParams(FamilyParams):
    """The parameters a meta preset or override may set; the bases are checked against the
    registry (`preset_params` and `validate` both go through this model)."""

    base_families: list[str] = Field(default_factory=lambda: list(DEFAULT_BASES), min_length=1)
    base_preset: Literal["conservative", "balanced", "aggressive"] = "balanced"
    base_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    context_features: list[str] = Field(default_factory=list)
    regime_feature: str | None = None
    meta_c: float = Field(1.0, gt=0)
    oof_folds: int = Field(4, ge=2, le=10)

    @field_validator("base_families")
    @classmethod
    def _registered_classifiers(cls, bases: list[str]) -> list[str]:
        from alphafactory.models import FAMILIES

        stackable = [name for name, family in FAMILIES.items() if family.role == "classifier"]
        for name in bases:
            if name not in stackable:
                raise ValueError(
                    f"'{name}' is not a registered classifier family; choose from "
                    f"{', '.join(stackable)}"
                )
        if len(set(bases)) != len(bases):
            raise ValueError("repeats a family")
        return bases

    @field_validator("base_overrides")
    @classmethod
    def _overrides_of_bases(
        cls, overrides: dict[str, dict[str, Any]], info: ValidationInfo
    ) -> dict[str, dict[str, Any]]:
        from alphafactory.models import preset_params

        bases = info.data.get("base_families")
        if bases is None:  # base_families failed; that error is the one reported
            return overrides
        for name in overrides:
            if name not in bases:
                raise ValueError(f"'{name}' is not in base_families ({', '.join(bases)})")
        for name in bases:  # a bad override fails as the base's own ConfigError
            preset_params(name, info.data.get("base_preset"), overrides.get(name))
        return overrides

    @field_validator("context_features")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("names a feature twice")
        return names


@dataclass(frozen=True)
class Layout:
    """How a row's features and base probabilities become the meta-learner's inputs."""

    bases: tuple[str, ...]
    context: tuple[int, ...] = ()
    medians: tuple[float, ...] = ()
    means: tuple[float, ...] = ()
    scales: tuple[float, ...] = ()
    regime: int | None = None
    terciles: tuple[float, float] | None = None

    @classmethod
    def fit(cls, bases: Sequence[str], features: np.ndarray, context: Sequence[int],
            regime: int | None) -> Layout:  # fmt: skip
        """The statistics of `features` (training rows) that the inputs are built with."""
        columns = features[:, list(context)]
        medians = column_medians(columns)
        filled = impute(columns, medians).astype(np.float64)
        scales = filled.std(axis=0)
        terciles = None
        if regime is not None:
            low, high = np.nanquantile(features[:, regime].astype(np.float64), [1 / 3, 2 / 3])
            terciles = (float(low), float(high))
        return cls(
            tuple(bases), tuple(int(c) for c in context),
            tuple(float(m) for m in medians), tuple(float(m) for m in filled.mean(axis=0)),
            tuple(float(s) if s > 0 else 1.0 for s in scales), regime, terciles,
        )  # fmt: skip

    def inputs(self, features: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """The meta-learner's input rows: log-probabilities | context | regime terms."""
        logp = stack_inputs(probabilities)
        parts = [logp]
        if self.context:
            columns = impute(features[:, list(self.context)], np.asarray(self.medians, np.float32))
            parts.append((columns.astype(np.float64) - self.means) / np.asarray(self.scales))
        if self.regime is not None and self.terciles is not None:
            values = features[:, self.regime].astype(np.float64)
            low = values <= self.terciles[0]
            high = values > self.terciles[1]
            mid = ~low & ~high & ~np.isnan(values)
            parts.append(np.column_stack([low, mid, high]).astype(np.float64))
            parts += [logp * low[:, None], logp * high[:, None]]
        return np.hstack(parts)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Layout:
        terciles = data.get("terciles")
        return cls(
            tuple(str(b) for b in data["bases"]), tuple(int(c) for c in data["context"]),
            tuple(float(v) for v in data["medians"]), tuple(float(v) for v in data["means"]),
            tuple(float(v) for v in data["scales"]),
            None if data.get("regime") is None else int(data["regime"]),
            None if terciles is None else (float(terciles[0]), float(terciles[1])),
        )  # fmt: skip


def _base_file(index: int, name: str) -> str:
    return f"base-{index}-{name}.zip"


class MetaModel(FittedModel):
    """The base models (fitted on all training rows), the input layout and the learner."""

    family = "meta"

    def __init__(
        self,
        feature_names: tuple[str, ...],
        bases: Sequence[FittedModel],
        layout: Layout,
        learner: Any,
        payload: Mapping[str, bytes] | None = None,
    ) -> None:
        super().__init__(feature_names, max(base.best_iteration for base in bases))
        self.bases = tuple(bases)
        self.layout = layout
        self.learner = learner
        self._payload = None if payload is None else dict(payload)

    def base_probabilities(self, features: np.ndarray) -> np.ndarray:
        """Rows × 3 per base, in `layout.bases` order."""
        features = np.asarray(features, dtype=np.float32)
        return np.hstack([base.predict_proba(features) for base in self.bases])

    def _predict(self, features: np.ndarray) -> np.ndarray:
        inputs = self.layout.inputs(features, self.base_probabilities(features))
        return proba3(self.learner, inputs)

    def files(self) -> dict[str, bytes]:
        if self._payload is None:
            from alphafactory.models import family as family_named

            files = {
                _base_file(i, name): bundle_bytes(base, family_named(name))
                for i, (name, base) in enumerate(zip(self.layout.bases, self.bases, strict=True))
            }
            layout = {
                "format": LAYOUT_FORMAT,
                **self.layout.to_json(),
                "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
            }
            files[LAYOUT] = json.dumps(layout, indent=1, sort_keys=True).encode()
            files[LEARNER] = _skops.dumps({"format": LAYOUT_FORMAT, "learner": self.learner})
            self._payload = files
        return dict(self._payload)


def _columns(wanted: Sequence[str], names: tuple[str, ...], parameter: str) -> list[int]:
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ConfigError(
            f"meta parameter '{parameter}': feature '{missing[0]}' is not among the sample's "
            f"features ({', '.join(names)})"
        )
    return [names.index(name) for name in wanted]


class MetaFamily(ModelFamily):
    """A logistic meta-learner over registered families' out-of-fold probabilities."""

    name = "meta"
    role = "meta"
    artifact_format = "meta-nested-bundles"
    extra = "registry"
    params = MetaParams

    def fit(
        self, train: Sample, valid: Sample, params: Mapping[str, Any], budget: FitBudget
    ) -> MetaModel:
        from alphafactory.models import family as family_named
        from alphafactory.models import preset_params

        threadpoolctl = require("threadpoolctl", "core")
        p = self.checked(train, valid, params)
        train, valid = as_float32(train), as_float32(valid)
        names = train.feature_names
        context = _columns(p["context_features"], names, "context_features")
        regime = None
        if p["regime_feature"] is not None:
            regime = _columns([p["regime_feature"]], names, "regime_feature")[0]
        work = fold_work(train, p["oof_folds"])  # refuses samples without timestamps
        overrides, preset = p["base_overrides"], p["base_preset"]
        bases = [
            (family_named(name), preset_params(name, preset, overrides.get(name)))
            for name in p["base_families"]
        ]
        seconds = None if budget.seconds is None else budget.seconds * (1 - _RESERVE)
        clock = TimeShare(seconds, len(bases) * (len(train) + sum(work)))

        def fit_one(family: ModelFamily, base_params: dict[str, Any], rows: Sample) -> FittedModel:
            share = dataclasses.replace(budget, seconds=clock.take(len(rows)))
            return family.fit(rows, valid, base_params, share)

        fitted: list[FittedModel] = []
        oof_parts: list[np.ndarray] = []
        mask = np.ones(len(train), dtype=bool)
        with threadpoolctl.threadpool_limits(limits=budget.threads):
            for family, base_params in bases:
                fitted.append(fit_one(family, base_params, train))
                fit_fold = functools.partial(fit_one, family, base_params)
                oof = out_of_fold(train, fit_fold, p["oof_folds"])
                oof_parts.append(oof.probabilities)
                mask &= oof.mask
            layout = Layout.fit(p["base_families"], train.features, context, regime)
            inputs = layout.inputs(train.features[mask], np.hstack(oof_parts)[mask])
            weights = None if train.weights is None else np.asarray(train.weights)[mask]
            learner = fit_meta_learner(
                inputs, train.labels[mask], weights, p["meta_c"], budget.seed
            )
        return MetaModel(names, fitted, layout, learner)

    def load(self, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> MetaModel:
        linear_model = require("sklearn.linear_model", "core")
        names = tuple(str(name) for name in manifest.get("feature_names", ()))
        try:
            data = json.loads(files[LAYOUT])
            if data.get("format") != LAYOUT_FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            layout = Layout.from_json(data)
            digests = {str(k): str(v) for k, v in dict(data["sha256"]).items()}
            columns = [*layout.context, *([] if layout.regime is None else [layout.regime])]
            if any(not 0 <= column < len(names) for column in columns):
                raise ValueError(f"feature columns {columns} outside the {len(names)} features")
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise ModelError(
                f"meta bundle: {LAYOUT} is not a format-{LAYOUT_FORMAT} layout ({exc}); "
                "retrain the model"
            ) from None
        stored = _skops.loads(files.get(LEARNER, b""), (), f"meta bundle: {LEARNER}")
        learner = stored.get("learner") if isinstance(stored, dict) else None
        if not isinstance(learner, linear_model.LogisticRegression):
            raise ModelError(f"meta bundle: {LEARNER} holds no logistic regression; retrain")
        bases = []
        for index, name in enumerate(layout.bases):
            key = _base_file(index, name)
            if key not in files or key not in digests:
                raise ModelError(f"meta bundle has no {key}; retrain the model")
            base = bundle_from_bytes(files[key], digests[key], label=f"meta bundle: {key}")
            if base.family != name or base.feature_names != names:
                raise ModelError(
                    f"meta bundle: {key} holds a {base.family} model of other features; "
                    "retrain the model"
                )
            bases.append(base)
        return MetaModel(names, bases, layout, learner, payload=files)

    def search_space(self, stage: int) -> SearchSpace:
        """The meta-learner's regularisation and the fold count, for every stage."""
        return SearchSpace({"meta_c": (0.3, 1.0, 3.0), "oof_folds": (3, 4, 5)})
