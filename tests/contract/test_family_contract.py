"""The contract every model family must keep, run over the whole registry: adding a family to
`models/_registry.py` puts it through every test here."""

from __future__ import annotations

import dataclasses
import io as stdio
import json
import pickle
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alphafactory.errors import ConfigError, DataError, ModelError
from alphafactory.metrics import average_precision
from alphafactory.models import (
    FAMILIES,
    PRESETS,
    FittedModel,
    History,
    ModelFamily,
    Sample,
    bundle_bytes,
    load_model,
    preset_params,
    presets_of,
    read_manifest,
    save_model,
)
from alphafactory.registry.checksums import sha256_file
from tests.contract.conftest import (
    BUDGET,
    CONTRACT_OVERRIDES,
    N_FEATURES,
    contract_params,
    make_sample,
)

_FITS: dict[str, FittedModel] = {}


def fitted(family: ModelFamily, train: Sample, valid: Sample) -> FittedModel:
    """One balanced-preset fit per family, shared by the tests that only read it."""
    if family.name not in _FITS:
        _FITS[family.name] = family.fit(train, valid, contract_params(family.name), BUDGET)
    return _FITS[family.name]


def predict(model: FittedModel, sample: Sample) -> np.ndarray:
    """The model's probabilities for the sample's rows, read with their history (which only
    models with a lookback above 1 use)."""
    return model.predict_proba(sample.features, sample.history)


def test_registry_names_match_families() -> None:
    assert FAMILIES, "no families registered"
    for name, family in FAMILIES.items():
        assert family.name == name
        assert family.role in ("classifier", "meta")
        assert family.artifact_format
    assert set(CONTRACT_OVERRIDES) <= set(FAMILIES), "the contract table names a stranger"


def test_probabilities_have_three_columns_summing_to_one(
    family: ModelFamily, train_sample: Sample, valid_sample: Sample, test_sample: Sample
) -> None:
    model = fitted(family, train_sample, valid_sample)
    probabilities = predict(model, test_sample)
    assert probabilities.shape == (len(test_sample), 3)
    assert np.all(probabilities >= 0) and np.all(probabilities <= 1)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert model.feature_names == test_sample.feature_names
    assert model.family == family.name


def test_learns_the_planted_rule(
    family: ModelFamily, train_sample: Sample, valid_sample: Sample, test_sample: Sample
) -> None:
    """Out-of-sample AP well above the no-skill baseline (class frequencies) on a rule that
    f0 and f1 decide: a family that predicts noise or ignores features fails here."""
    model = fitted(family, train_sample, valid_sample)
    ap = average_precision(test_sample.labels, predict(model, test_sample))
    prior = np.bincount(train_sample.labels, minlength=3) / len(train_sample)
    baseline = average_precision(test_sample.labels, np.tile(prior, (len(test_sample), 1)))
    assert ap > baseline + 0.2, (family.name, ap, baseline)


def test_save_then_load_predicts_identically(
    family: ModelFamily,
    train_sample: Sample,
    valid_sample: Sample,
    test_sample: Sample,
    tmp_path: Path,
) -> None:
    model = fitted(family, train_sample, valid_sample)
    path = save_model(model, family, tmp_path / "model.zip", {"preset": "balanced"})
    loaded = load_model(path, sha256_file(path))
    assert type(loaded) is type(model)
    assert loaded.feature_names == model.feature_names
    np.testing.assert_array_equal(predict(loaded, test_sample), predict(model, test_sample))
    manifest = read_manifest(path)
    assert manifest["family"] == family.name and manifest["preset"] == "balanced"
    assert manifest["artifact_format"] == family.artifact_format
    # the same model always makes the same bytes (the cache and the registry rely on it)
    assert bundle_bytes(loaded, family, {"preset": "balanced"}) == path.read_bytes()


def test_same_seed_same_model(
    family: ModelFamily, train_sample: Sample, valid_sample: Sample, test_sample: Sample
) -> None:
    params = contract_params(family.name, "aggressive")
    first = family.fit(train_sample, valid_sample, params, BUDGET)
    second = family.fit(train_sample, valid_sample, params, BUDGET)
    np.testing.assert_array_equal(predict(first, test_sample), predict(second, test_sample))


def test_no_row_after_a_prediction_is_read(
    family: ModelFamily, train_sample: Sample, valid_sample: Sample, test_sample: Sample
) -> None:
    """The look-ahead probe of prediction: every matrix row after row k replaced by noise
    leaves the probabilities of rows 0..k exactly as they were (and changes later ones). A
    model reading more than its own row refuses rows without their history."""
    model = fitted(family, train_sample, valid_sample)
    before = predict(model, test_sample)
    k = len(test_sample) // 2
    values = test_sample.features.copy()
    values[k + 1 :] = np.random.default_rng(11).normal(scale=3.0, size=values[k + 1 :].shape)
    history = History(values, np.arange(len(values)), np.arange(N_FEATURES))
    after = predict(model, dataclasses.replace(test_sample, features=values, history=history))
    np.testing.assert_array_equal(after[: k + 1], before[: k + 1])
    assert not np.allclose(after[k + 1 :], before[k + 1 :])
    if model.lookback > 1:
        with pytest.raises(DataError, match=r"needs the feature matrix the rows come from"):
            model.predict_proba(test_sample.features)
    else:
        np.testing.assert_array_equal(model.predict_proba(test_sample.features), before)


def test_one_class_only_is_refused(family: ModelFamily, valid_sample: Sample) -> None:
    one_class = make_sample(300, seed=5)
    one_class = dataclasses.replace(one_class, labels=np.ones(300, dtype=np.int32))
    with pytest.raises(DataError, match=r"only class 1 present"):
        family.fit(one_class, valid_sample, contract_params(family.name), BUDGET)


def test_all_nan_column_is_refused(family: ModelFamily, valid_sample: Sample) -> None:
    sample = make_sample(300, seed=6)
    features = sample.features.copy()
    features[:, 2] = np.nan
    with pytest.raises(DataError, match=r"feature 'f2' is NaN in every row"):
        family.fit(
            dataclasses.replace(sample, features=features),
            valid_sample,
            contract_params(family.name),
            BUDGET,
        )


def test_wrong_feature_count_is_refused(
    family: ModelFamily, train_sample: Sample, valid_sample: Sample
) -> None:
    model = fitted(family, train_sample, valid_sample)
    with pytest.raises(ModelError, match=rf"expects {N_FEATURES} feature columns"):
        model.predict_proba(np.zeros((4, N_FEATURES - 1), dtype=np.float32))


def test_unknown_parameter_is_refused(family: ModelFamily) -> None:
    with pytest.raises(ConfigError, match=rf"{family.name} parameter 'no_such_knob' is unknown"):
        preset_params(family.name, overrides={"no_such_knob": 1})


def test_every_preset_is_valid(family: ModelFamily) -> None:
    presets = presets_of(family.name)
    assert list(presets) == list(PRESETS)
    validated = [preset_params(family.name, name) for name in PRESETS]
    assert len({json.dumps(v, sort_keys=True) for v in validated}) == 3, "presets must differ"


def _rewrite(path: Path, replace: dict[str, bytes], manifest_files: bool) -> None:
    """Rewrite a bundle with some payload files replaced; with `manifest_files`, the
    manifest's digests are updated too (an attacker who knows the format)."""
    import hashlib

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members.update(replace)
    if manifest_files:
        manifest = json.loads(members["manifest.json"])
        for name in replace:
            manifest["files"][name] = hashlib.sha256(replace[name]).hexdigest()
        members["manifest.json"] = json.dumps(manifest).encode()
    buffer = stdio.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    path.write_bytes(buffer.getvalue())


def test_tampered_bundle_is_refused(
    family: ModelFamily, train_sample: Sample, valid_sample: Sample, tmp_path: Path
) -> None:
    model = fitted(family, train_sample, valid_sample)
    path = save_model(model, family, tmp_path / "model.zip")
    recorded = sha256_file(path)
    payload = sorted(model.files())[0]
    _rewrite(path, {payload: model.files()[payload] + b" "}, manifest_files=False)
    with pytest.raises(ModelError, match=rf"checksum mismatch for {payload} inside the bundle"):
        load_model(path)
    with pytest.raises(ModelError, match=r"model\.zip has sha256 .* was recorded"):
        load_model(path, recorded)


class _Payload:
    """Unpickling this runs `Path(marker).touch()`: proof that a loader executed pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_pickle_payload_is_refused_without_running(
    family: ModelFamily, train_sample: Sample, valid_sample: Sample, tmp_path: Path
) -> None:
    """Every payload file replaced by a pickle (digests updated, so only the family's own
    format check stands in the way): refused with ModelError, and the pickle never ran."""
    model = fitted(family, train_sample, valid_sample)
    checked = 0
    for payload in sorted(model.files()):
        marker = tmp_path / f"ran-{payload}"
        path = save_model(model, family, tmp_path / f"{payload}.zip")
        _rewrite(path, {payload: pickle.dumps(_Payload(marker))}, manifest_files=True)
        with pytest.raises(ModelError):
            load_model(path)
        assert not marker.exists(), f"{family.name} executed a pickle in {payload}"
        checked += 1
    assert checked >= 1


def test_time_budget_is_respected(family: ModelFamily) -> None:
    """With rounds and patience out of reach, only the time limit can end the fit."""
    train, valid = make_sample(20_000, seed=8), make_sample(4_000, seed=9)
    budget = dataclasses.replace(BUDGET, rounds=100_000, early_stopping=100_000, seconds=0.5)
    params = contract_params(family.name, "aggressive")
    started = time.perf_counter()
    model = family.fit(train, valid, params, budget)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5 + 3.0, (family.name, elapsed)
    assert model.best_iteration < budget.rounds


def test_every_family_has_its_own_grade_benchmarks(family: ModelFamily) -> None:
    from alphafactory.registry.grades import BENCHMARKS

    assert family.name in BENCHMARKS, f"add {family.name} to registry.grades.BENCHMARKS"
    assert BENCHMARKS[family.name]["ap"].poor > 1 / 3  # above chance for three classes
