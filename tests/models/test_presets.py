"""Presets: the name, `$MODEL_VARIANT`, overrides and the environment's `models:` section."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphafactory.config import load_environment
from alphafactory.errors import ConfigError
from alphafactory.models import FAMILIES, preset_params, presets_of


def test_model_variant_picks_the_preset_and_a_name_given_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked = 0
    for name in FAMILIES:
        conservative = preset_params(name, "conservative")
        monkeypatch.setenv("MODEL_VARIANT", "conservative")
        assert preset_params(name) == conservative
        assert preset_params(name, "aggressive") == preset_params(name, "aggressive", {})
        assert preset_params(name, "aggressive") != conservative
        monkeypatch.delenv("MODEL_VARIANT")
        assert preset_params(name) == preset_params(name, "balanced")
        checked += 1
    assert checked == len(FAMILIES) >= 8


def test_overrides_go_on_top_of_the_preset() -> None:
    params = preset_params("xgboost", "conservative", {"max_depth": 9})
    assert params["max_depth"] == 9
    assert params["learning_rate"] == presets_of("xgboost")["conservative"]["learning_rate"]


def test_bad_preset_names_fail_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_VARIANT", "bold")
    with pytest.raises(ConfigError, match=r"^\$MODEL_VARIANT 'bold' is unknown; choose one of "
                       r"conservative, balanced, aggressive$"):  # fmt: skip
        preset_params("lightgbm")
    monkeypatch.delenv("MODEL_VARIANT")
    with pytest.raises(ConfigError, match=r"^preset 'fast' is unknown"):
        preset_params("lightgbm", "fast")
    with pytest.raises(ConfigError, match=r"^unknown model family 'lgbm'; registered families: "):
        preset_params("lgbm")
    with pytest.raises(ConfigError, match=r"^lightgbm parameter 'num_leaves'=1: "):
        preset_params("lightgbm", overrides={"num_leaves": 1})


def _environment(tmp_path: Path, models: str) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(f"name: families-check\nmodels:\n{models}")
    return path


def test_the_environment_names_a_bad_family_or_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\.families.*unknown family 'lgbm'"):
        load_environment(str(_environment(tmp_path, "  families: [lightgbm, lgbm]\n")))
    with pytest.raises(ConfigError, match=r"xgboost parameter 'depth' is unknown; allowed: "):
        load_environment(str(_environment(tmp_path, "  overrides:\n    xgboost: {depth: 3}\n")))
    loaded = load_environment(
        str(_environment(tmp_path, "  families: [xgboost]\n  preset: conservative\n"))
    )
    assert loaded.models.families == ["xgboost"] and loaded.models.preset == "conservative"
