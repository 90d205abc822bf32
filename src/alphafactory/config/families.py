"""Pydantic model of the `models:` section: which families compete, with which preset."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from alphafactory.config._strict import Strict


class ModelsConfig(Strict):
    """Model families, their preset and overrides, and how their fits are run.

    Attributes:
        families: registered family names that compete in tune stage 1 (the first one also
            screens features); `run --families a,b|all` overrides it.
        preset: conservative / balanced / aggressive; unset: `$MODEL_VARIANT`, else balanced.
        overrides: per family, parameters set on top of the preset.
        finalists_per_group: LightGBM fits every variant of a group; the other families fit
            the group's best `finalists_per_group` LightGBM variants (0: every variant).
        isolation: `thread` fits in the shard's process; `process` fits each non-LightGBM
            variant in a child process with capped threads, so a crash, an out-of-memory kill
            or `fit_timeout_seconds` fails that variant only.
        fit_seconds: wall-clock cap of one fit of a non-LightGBM family (None: none).
        fit_timeout_seconds: with `isolation: process`, a child still running after this
            long is killed and its variant marked failed.
        fit_memory_mb: with `isolation: process`, the child's address-space limit.
    """

    families: list[str] = Field(default_factory=lambda: ["lightgbm"])
    preset: Literal["conservative", "balanced", "aggressive"] | None = None
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    finalists_per_group: int = Field(default=1, ge=0)
    isolation: Literal["thread", "process"] = "thread"
    fit_seconds: float | None = Field(default=None, gt=0)
    fit_timeout_seconds: float = Field(default=600.0, gt=0)
    fit_memory_mb: int | None = Field(default=None, ge=64)

    @field_validator("families")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        from alphafactory.models import FAMILIES

        if not names:
            raise ValueError("name at least one model family")
        if len(set(names)) != len(names):
            raise ValueError("names a family twice")
        unknown = [name for name in names if name not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown family '{unknown[0]}'; registered: {', '.join(FAMILIES)}")
        return names

    @model_validator(mode="after")
    def _overrides_valid(self) -> ModelsConfig:
        from alphafactory.errors import ConfigError
        from alphafactory.models import preset_params

        for name, params in self.overrides.items():
            try:
                preset_params(name, self.preset, params)  # unknown family or parameter fails
            except ConfigError as exc:
                raise ValueError(f"overrides: {exc}") from None
        return self
