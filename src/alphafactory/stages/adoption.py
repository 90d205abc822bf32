"""Tuning must earn its place: a group keeps the stage-1 defaults unless its tuned
candidate beats them on the training period's rolling CV by `tune.adopt_margin`."""

from __future__ import annotations

from typing import Any

import numpy as np

from alphafactory import io
from alphafactory.config.models import EnvironmentConfig
from alphafactory.models.variants import Variant
from alphafactory.stages.common import Matrix, Plan, RunLayout
from alphafactory.stages.rolling_cv import fit_score, fold_groups

#: The parameters stages 2-4 tune; every other parameter stays at its stage-1 value.
TUNED_KEYS = ("num_leaves", "max_depth", "feature_fraction", "learning_rate", "lambda_l1")


def with_tuned(defaults: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
    """The defaults with the tuned keys of `best` in their place."""
    return {**defaults, **{k: best[k] for k in TUNED_KEYS if k in best}}


def adoption(
    config: EnvironmentConfig,
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    variant: Variant,
    candidate: dict[str, Any],
) -> dict[str, Any]:
    """Whether the tuned `candidate` earns its place over the stage-1 defaults.

    Both are scored by the same rolling-window CV over the training period (the folds of
    stage 3); the candidate is adopted only when its mean fold AP is at least the defaults'
    plus `tune.adopt_margin`. Neither the selection nor the test period is involved.
    """
    from alphafactory.stages.tune import default_params

    margin = config.tune.adopt_margin
    if not candidate:
        return {"adopted": False, "reason": "no tuned parameters"}
    folds = fold_groups(layout, plan, matrix, config, variant)
    if not folds:
        return {"adopted": False, "reason": "too few rows for rolling-CV folds"}
    defaults = default_params(config)

    def cv(params: dict[str, Any]) -> float:
        fits = [fit_score(g, variant.variant_id, config.tune.num_rounds,
                           config.tune.stage_early_stopping[3], config.tune.min_rows)
                for g in folds]  # fmt: skip
        return float(np.mean([fit(params, []) for fit in fits]))

    cv_default, cv_tuned = cv(defaults), cv(with_tuned(defaults, candidate))
    adopted = bool(np.isfinite(cv_tuned) and cv_tuned >= cv_default + margin)
    verdict = "beats" if adopted else "does not beat"
    return {
        "adopted": adopted,
        "cv_default": cv_default,
        "cv_tuned": cv_tuned,
        "margin": margin,
        "params": candidate,
        "reason": f"tuned CV AP {cv_tuned:.4f} {verdict} defaults {cv_default:.4f} + {margin}",
    }


def adoption_of(layout: RunLayout, gid: str) -> dict[str, Any]:
    """Stage 4's adoption verdict for a group ({} when stage 4 did not run)."""
    uri = layout.tune_winners(4)
    if not io.exists(uri):
        return {}
    return dict(io.read_json(uri)["units"].get(gid, {}).get("adoption", {}))


def tuned_params(config: EnvironmentConfig, layout: RunLayout, gid: str) -> dict[str, Any]:
    """The group's final parameters: the tuned candidate when stage 4 adopted it, else the
    stage-1 defaults."""
    from alphafactory.stages.tune import default_params

    verdict = adoption_of(layout, gid)
    if verdict.get("adopted"):
        return with_tuned(default_params(config), verdict["params"])
    return default_params(config)
