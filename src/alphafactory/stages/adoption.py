"""Tuning must earn its place: a group keeps the stage-1 defaults unless its tuned
candidate, fitted as in production, beats them on the selection period by
`tune.adopt_margin`, significantly (`tune.adopt_alpha`). Stages 2-4 search inside the
training period only, so the selection period judges the search without having fed it."""

from __future__ import annotations

import math
from typing import Any

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.layout import Plan, RunLayout
from alphafactory.models.lightgbm.shard import FitResult, GroupData, fit_variant
from alphafactory.paired import paired_ap_test
from alphafactory.stages.common import Matrix
from alphafactory.stages.fitting import default_params, load_group
from alphafactory.targets.variants import Variant

#: The parameters stages 2-4 tune; every other parameter stays at its stage-1 value.
TUNED_KEYS = ("num_leaves", "max_depth", "feature_fraction", "learning_rate", "lambda_l1")


def with_tuned(defaults: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
    """The defaults with the tuned keys of `best` in their place."""
    return {**defaults, **{k: best[k] for k in TUNED_KEYS if k in best}}


def production_params(config: EnvironmentConfig, tuned: dict[str, Any]) -> dict[str, Any]:
    """A group's parameters as the production fit uses them: with the production learning rate."""
    return {**tuned, "learning_rate": config.train.learning_rate}


def production_fit(
    config: EnvironmentConfig, group: GroupData, variant_id: str, params: dict[str, Any]
) -> FitResult:
    """The production protocol, in one place: train period, early stopping on the selection
    period, the production rounds and patience; `params` already production parameters."""
    return fit_variant(
        group, variant_id, params, config.train.num_rounds, config.train.early_stopping,
        min_rows=config.tune.min_rows, keep_model=True,
    )  # fmt: skip


def adoption(
    config: EnvironmentConfig,
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    variant: Variant,
    candidate: dict[str, Any],
) -> dict[str, Any]:
    """Whether the tuned `candidate` earns its place over the stage-1 defaults.

    Both are fitted exactly as the production fit will be (train period, early stopping on
    the selection period, production learning rate and rounds) and scored by AP on the
    selection period; the candidate is adopted only when it beats the defaults by
    `tune.adopt_margin`. The test period is not involved.
    """
    margin = config.tune.adopt_margin
    if not candidate:
        return {"adopted": False, "reason": "no tuned parameters"}
    group = load_group(layout, plan, matrix, config, [variant])
    if group is None:
        return {"adopted": False, "reason": "no rows on one side of the selection split"}
    defaults = default_params(config)

    def selection_fit(params: dict[str, Any]) -> FitResult:
        return production_fit(config, group, variant.variant_id, production_params(config, params))

    default_fit, tuned_fit = selection_fit(defaults), selection_fit(with_tuned(defaults, candidate))
    labels, first, second = (
        default_fit.valid_labels, default_fit.valid_probabilities, tuned_fit.valid_probabilities
    )  # fmt: skip
    if labels is None or first is None or second is None:
        return {"adopted": False, "reason": f"the selection fit failed ({default_fit.status})"}
    paired = paired_ap_test(labels, first, second, seed=config.data.seed)
    alpha = config.tune.adopt_alpha
    large = math.isfinite(paired.gain) and paired.gain >= margin
    adopted = large and (alpha >= 1 or paired.p_value < alpha)
    return {
        "adopted": adopted,
        "selection_ap_default": default_fit.average_precision,
        "selection_ap_tuned": tuned_fit.average_precision,
        "gain": paired.gain,
        "p_value": paired.p_value,
        "params": candidate,
        "reason": f"tuned selection AP {paired.gain:+.4f} vs defaults "
        f"({'>=' if large else '<'} margin {margin}), paired p {paired.p_value:.3f} "
        f"({'<' if paired.p_value < alpha else '>='} {alpha})",
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
    verdict = adoption_of(layout, gid)
    if verdict.get("adopted"):
        return with_tuned(default_params(config), verdict["params"])
    return default_params(config)
