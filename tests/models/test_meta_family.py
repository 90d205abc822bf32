"""The meta family against oracles: the prediction rebuilt by hand from the bases, context
and regime columns; the bases equal to plain fits of their families; the learner refitted on
the bases' purged out-of-fold probabilities; nested bundles verified; parameters checked."""

from __future__ import annotations

import dataclasses
import hashlib
import io as stdio
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from alphafactory.errors import ConfigError, ModelError
from alphafactory.models import (
    FAMILIES,
    FitBudget,
    Sample,
    bundle_bytes,
    family,
    load_model,
    preset_params,
    save_model,
)
from alphafactory.models._bundle import bundle_from_bytes
from alphafactory.models._oof import out_of_fold, purged_folds
from alphafactory.models.meta import MetaFamily, MetaModel
from alphafactory.models.meta.family import LAYOUT
from tests.contract.conftest import make_sample

FAMILY = MetaFamily()
TRAIN = make_sample(900, seed=21)
VALID = make_sample(300, seed=22, start="2024-03-01")
TEST = make_sample(400, seed=23, start="2024-04-01")
BUDGET = FitBudget(rounds=30, early_stopping=5, seconds=None, threads=1, seed=5)
OVERRIDES = {
    "base_families": ["lightgbm", "ftrl"],
    "context_features": ["f2", "f5"],  # f5 has NaNs
    "regime_feature": "f3",
    "oof_folds": 3,
}
PARAMS = preset_params("meta", "balanced", OVERRIDES)


@pytest.fixture(scope="module")
def model() -> MetaModel:
    return FAMILY.fit(TRAIN, VALID, PARAMS, BUDGET)


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def inputs_by_hand(features: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """log-probabilities | standardised context | regime one-hot | logp x low, logp x high."""
    logp = np.log(np.clip(probabilities, 1e-4, 1.0))
    context = TRAIN.features[:, [2, 5]]
    medians = np.nanmedian(context, axis=0)  # float32, as the features
    filled = np.where(np.isnan(context), medians, context).astype(np.float64)
    mean, std = filled.mean(axis=0), filled.std(axis=0)
    rows = features[:, [2, 5]]
    rows = (np.where(np.isnan(rows), medians, rows).astype(np.float64) - mean) / std
    low_cut, high_cut = np.quantile(TRAIN.features[:, 3].astype(np.float64), [1 / 3, 2 / 3])
    value = features[:, 3].astype(np.float64)
    low, high = value <= low_cut, value > high_cut
    onehot = np.column_stack([low, ~low & ~high, high]).astype(np.float64)
    return np.hstack([logp, rows, onehot, logp * low[:, None], logp * high[:, None]])


def test_prediction_by_hand(model: MetaModel) -> None:
    probabilities = np.hstack([base.predict_proba(TEST.features) for base in model.bases])
    np.testing.assert_array_equal(model.base_probabilities(TEST.features), probabilities)
    inputs = inputs_by_hand(TEST.features, probabilities)
    assert inputs.shape[1] == 6 + 2 + 3 + 12
    np.testing.assert_allclose(model.layout.inputs(TEST.features, probabilities), inputs)
    learner = model.learner
    scores = inputs @ learner.coef_.T + learner.intercept_
    np.testing.assert_allclose(model.predict_proba(TEST.features), softmax(scores), atol=1e-9)


def test_bases_are_plain_fits_of_their_families_on_all_training_rows(model: MetaModel) -> None:
    assert [base.family for base in model.bases] == ["lightgbm", "ftrl"]
    for base in model.bases:
        plain = family(base.family).fit(
            TRAIN, VALID, preset_params(base.family, "balanced"), BUDGET
        )
        np.testing.assert_array_equal(
            base.predict_proba(TEST.features), plain.predict_proba(TEST.features)
        )
    assert model.best_iteration == max(base.best_iteration for base in model.bases)


def test_learner_is_fitted_on_the_bases_purged_out_of_fold_probabilities(
    model: MetaModel,
) -> None:
    parts, mask = [], np.ones(len(TRAIN), dtype=bool)
    for name in ("lightgbm", "ftrl"):
        base_family, params = family(name), preset_params(name, "balanced")

        def fit(rows: Sample, f: Any = base_family, p: Any = params) -> Any:
            return f.fit(rows, VALID, p, BUDGET)

        oof = out_of_fold(TRAIN, fit, 3)
        parts.append(oof.probabilities)
        mask &= oof.mask
    assert 0.5 < mask.mean() < 1.0
    probabilities = np.hstack(parts)[mask]
    inputs = inputs_by_hand(TRAIN.features[mask], probabilities)
    oracle = LogisticRegression(C=1.0, max_iter=1000, random_state=BUDGET.seed)
    oracle.fit(inputs, TRAIN.labels[mask])
    np.testing.assert_allclose(model.learner.coef_, oracle.coef_, atol=1e-10)
    np.testing.assert_allclose(model.learner.intercept_, oracle.intercept_, atol=1e-10)


def test_regime_terciles_come_from_the_training_rows(model: MetaModel) -> None:
    expected = np.nanquantile(TRAIN.features[:, 3].astype(np.float64), [1 / 3, 2 / 3])
    assert model.layout.terciles == (float(expected[0]), float(expected[1]))
    assert model.layout.regime == 3 and model.layout.context == (2, 5)


def test_default_context_is_none_and_inputs_are_the_log_probabilities() -> None:
    params = preset_params("meta", "balanced", {"base_families": ["ftrl"], "oof_folds": 2})
    assert params["context_features"] == [] and params["regime_feature"] is None
    fitted = FAMILY.fit(TRAIN, VALID, params, BUDGET)
    probabilities = fitted.base_probabilities(TEST.features)
    np.testing.assert_array_equal(
        fitted.layout.inputs(TEST.features, probabilities),
        np.log(np.clip(probabilities, 1e-4, 1.0)),
    )


def test_saved_model_nests_verified_bundles(model: MetaModel, tmp_path: Path) -> None:
    path = save_model(model, FAMILY, tmp_path / "meta.zip")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        layout = json.loads(archive.read(LAYOUT))
        nested = archive.read("base-0-lightgbm.zip")
    assert {"base-0-lightgbm.zip", "base-1-ftrl.zip", LAYOUT, "learner.skops"} <= names
    assert layout["sha256"]["base-0-lightgbm.zip"] == hashlib.sha256(nested).hexdigest()
    assert nested == bundle_bytes(model.bases[0], family("lightgbm"))
    loaded = load_model(path)
    np.testing.assert_array_equal(
        loaded.predict_proba(TEST.features), model.predict_proba(TEST.features)
    )


def _replace_members(payload: bytes, replace: dict[str, bytes]) -> bytes:
    with zipfile.ZipFile(stdio.BytesIO(payload)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members.update(replace)
    buffer = stdio.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_an_altered_nested_bundle_is_refused_by_its_own_manifest(
    model: MetaModel, tmp_path: Path
) -> None:
    """Every outer digest (manifest and meta.json) is updated: only the nested bundle's own
    manifest still knows the model text was changed."""
    files = model.files()
    key = "base-0-lightgbm.zip"
    with zipfile.ZipFile(stdio.BytesIO(files[key])) as archive:
        text = archive.read("model.txt")
    altered = _replace_members(files[key], {"model.txt": text + b"\n"})
    layout = json.loads(files[LAYOUT])
    layout["sha256"][key] = hashlib.sha256(altered).hexdigest()
    new_files = {**files, key: altered, LAYOUT: json.dumps(layout).encode()}
    manifest = {"feature_names": list(TRAIN.feature_names)}
    with pytest.raises(ModelError, match=r"base-0-lightgbm\.zip: checksum mismatch for model"):
        FAMILY.load(new_files, manifest)
    # and without updating meta.json, its recorded digest refuses the nested bundle first
    with pytest.raises(ModelError, match=r"base-0-lightgbm\.zip has sha256 .* was recorded"):
        FAMILY.load({**files, key: altered}, manifest)


def test_bundle_from_bytes_round_trips_and_refuses_bad_input(model: MetaModel) -> None:
    payload = bundle_bytes(model.bases[1], family("ftrl"))
    again = bundle_from_bytes(payload, hashlib.sha256(payload).hexdigest())
    np.testing.assert_array_equal(
        again.predict_proba(TEST.features), model.bases[1].predict_proba(TEST.features)
    )
    with pytest.raises(ModelError, match=r"nested bundle has sha256"):
        bundle_from_bytes(payload, "0" * 64)
    with pytest.raises(ModelError, match=r"inner: not an alphafactory model bundle"):
        bundle_from_bytes(b"not a zip", label="inner")


def test_same_seed_same_bytes(model: MetaModel) -> None:
    assert FAMILY.fit(TRAIN, VALID, PARAMS, BUDGET).files() == model.files()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"base_families": ["nope"]}, r"'nope' is not a registered classifier family; "
         r"choose from .*lightgbm.*ftrl"),
        ({"base_families": ["ensemble"]}, r"'ensemble' is not a registered classifier"),
        ({"base_families": ["meta"]}, r"'meta' is not a registered classifier"),
        ({"base_families": ["ftrl", "ftrl"]}, r"repeats a family"),
        ({"base_overrides": {"xgboost": {}}}, r"'base_overrides'=.*'xgboost' is not in"),
        ({"base_overrides": {"lightgbm": {"no_knob": 1}}}, r"lightgbm parameter 'no_knob'"),
        ({"base_preset": "wild"}, r"meta parameter 'base_preset'"),
        ({"context_features": ["f1", "f1"]}, r"names a feature twice"),
    ],
)  # fmt: skip
def test_bad_parameters_are_config_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        preset_params("meta", "balanced", overrides)
    assert "\n" not in str(caught.value)


def test_no_meta_family_is_offered_as_a_base() -> None:
    with pytest.raises(ConfigError) as caught:
        preset_params("meta", "balanced", {"base_families": ["nope"]})
    offered = str(caught.value).split("choose from ")[1].split(", ")
    assert offered and all(FAMILIES[name].role == "classifier" for name in offered)
    assert "meta" not in offered and "ensemble" not in offered


@pytest.mark.parametrize("parameter", ["context_features", "regime_feature"])
def test_unknown_feature_names_are_refused_at_fit(parameter: str) -> None:
    value: Any = ["volatility"] if parameter == "context_features" else "volatility"
    params = {**PARAMS, parameter: value}
    with pytest.raises(ConfigError, match=rf"'{parameter}': feature 'volatility' is not"):
        FAMILY.fit(TRAIN, VALID, params, BUDGET)


def test_garbage_layout_is_a_model_error(model: MetaModel) -> None:
    files = {**model.files(), LAYOUT: b"\x80not json"}
    with pytest.raises(ModelError, match=r"meta\.json is not a format-1 layout"):
        FAMILY.load(files, {"feature_names": list(TRAIN.feature_names)})


def test_time_budget_is_shared_among_the_base_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each base fit gets a slice of `seconds`, never the whole."""
    seen: list[float | None] = []
    ftrl = family("ftrl")

    class Spy:
        name, role = "ftrl", "classifier"

        def __getattr__(self, attribute: str) -> Any:
            return getattr(ftrl, attribute)

        def fit(self, train: Sample, valid: Sample, params: Any, budget: FitBudget) -> Any:
            seen.append(budget.seconds)
            return ftrl.fit(train, valid, params, budget)

    params = preset_params("meta", "balanced", {"base_families": ["ftrl"], "oof_folds": 2})
    budget = dataclasses.replace(BUDGET, seconds=20.0)
    monkeypatch.setitem(FAMILIES, "ftrl", Spy())
    FAMILY.fit(TRAIN, VALID, params, budget)
    assert len(seen) == 3  # the full fit and two folds
    assert all(s is not None and 0 < s < 18.0 for s in seen)  # 10 % is kept for the learner
    folds = purged_folds(TRAIN, 2)
    work = len(TRAIN) + sum(len(fold.train_index) for fold in folds)
    assert seen[0] == pytest.approx(18.0 * len(TRAIN) / work, abs=0.5)
