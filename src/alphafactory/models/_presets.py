"""Family presets (conservative / balanced / aggressive, `presets.yaml`), runtime overrides
and the `MODEL_VARIANT` environment variable, validated by each family's parameter model."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

from alphafactory.errors import ConfigError
from alphafactory.models._base import PRESETS, validate_params

#: The environment variable that picks the preset when none is given (users' documents).
PRESET_VARIABLE = "MODEL_VARIANT"
DEFAULT_PRESET = "balanced"


@functools.cache
def _all_presets() -> dict[str, dict[str, dict[str, Any]]]:
    text = resources.files("alphafactory.models").joinpath("presets.yaml").read_text()
    return dict(yaml.safe_load(text))


def presets_of(family_name: str) -> dict[str, dict[str, Any]]:
    """The family's presets by name (each a parameter mapping, before validation)."""
    from alphafactory.models._registry import family

    family(family_name)  # unknown names fail with the registered ones listed
    found = _all_presets().get(family_name)
    if found is None or set(found) != set(PRESETS):
        raise ConfigError(
            f"presets.yaml: family '{family_name}' must define the presets {', '.join(PRESETS)}"
        )
    return {name: dict(found[name] or {}) for name in PRESETS}


def chosen_preset(preset: str | None = None) -> str:
    """`preset`, else `$MODEL_VARIANT`, else `balanced`; refused unless a known preset."""
    name = preset or os.environ.get(PRESET_VARIABLE) or DEFAULT_PRESET
    if name not in PRESETS:
        source = "preset" if preset else f"${PRESET_VARIABLE}"
        raise ConfigError(f"{source} '{name}' is unknown; choose one of {', '.join(PRESETS)}")
    return name


def preset_params(
    family_name: str, preset: str | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The validated parameters of `family_name`'s preset with `overrides` on top."""
    from alphafactory.models._registry import family

    chosen = family(family_name)  # an unknown family is named before anything else
    name = chosen_preset(preset)
    merged = {**presets_of(family_name)[name], **dict(overrides or {})}
    return validate_params(chosen, merged)
