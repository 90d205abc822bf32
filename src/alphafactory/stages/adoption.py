"""Tuning must earn its place: a group keeps the stage-1 defaults unless its tuned
candidate, fitted as in production, beats them on the selection period by
`tune.adopt_margin`, significantly (`tune.adopt_alpha`). Stages 2-4 search inside the
training period only, so the selection period judges the search without having fed it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.layout import Plan, RunLayout
from alphafactory.models import FitResult, Sample, family
from alphafactory.models.lightgbm.shard import GroupData, fit_variant
from alphafactory.paired import PairedResult, paired_ap_test
from alphafactory.stages.common import Matrix
from alphafactory.stages.family_fit import fit_budget, fit_family, variant_samples
from alphafactory.stages.fitting import default_params, family_params, load_group
from alphafactory.targets.variants import Variant

LIGHTGBM = "lightgbm"
#: The LightGBM parameters stages 2-4 tune; every other parameter stays at its stage-1 value.
TUNED_KEYS = ("num_leaves", "max_depth", "feature_fraction", "learning_rate", "lambda_l1")


def with_tuned(
    defaults: dict[str, Any], best: dict[str, Any], family_name: str = LIGHTGBM
) -> dict[str, Any]:
    """The defaults with the tuned keys of `best` (the family's searched ones) in their place."""
    keys = (
        TUNED_KEYS if family_name == LIGHTGBM else tuple(family(family_name).search_space(2).grids)
    )
    return {**defaults, **{k: best[k] for k in keys if k in best}}


def family_defaults(config: EnvironmentConfig, family_name: str) -> dict[str, Any]:
    """Stage-1 parameters of a family: LightGBM's fixed ones plus preset, else the preset."""
    return default_params(config) if family_name == LIGHTGBM else family_params(config, family_name)


def production_params(
    config: EnvironmentConfig, tuned: dict[str, Any], family_name: str = LIGHTGBM
) -> dict[str, Any]:
    """A group's parameters as the production fit uses them: LightGBM at the production
    learning rate (`train.learning_rate`); other families as tuned."""
    if family_name != LIGHTGBM:
        return dict(tuned)
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
    family_name: str = LIGHTGBM,
) -> dict[str, Any]:
    """Whether the tuned `candidate` earns its place over the stage-1 defaults.

    Both are fitted exactly as the production fit will be (train period, early stopping on
    the selection period, production rounds; LightGBM at the production learning rate) and
    scored by AP on the selection period; the candidate is adopted only when it beats the
    defaults by `tune.adopt_margin`, significantly. The test period is not involved.
    """
    if not candidate:
        return {"adopted": False, "reason": "no tuned parameters"}
    fit = _selection_fitter(config, layout, plan, matrix, variant, family_name)
    if fit is None:
        return {"adopted": False, "reason": "no rows on one side of the selection split"}
    defaults = family_defaults(config, family_name)
    tuned = with_tuned(defaults, candidate, family_name)
    default_fit, tuned_fit = fit(defaults), fit(tuned)
    labels, first, second = (
        default_fit.valid_labels, default_fit.valid_probabilities, tuned_fit.valid_probabilities
    )  # fmt: skip
    if labels is None or first is None or second is None:
        return {"adopted": False, "reason": f"the selection fit failed ({default_fit.status})"}
    return _verdict(config, paired_ap_test(labels, first, second, seed=config.data.seed),
                    default_fit, tuned_fit, candidate)  # fmt: skip


def _selection_fitter(
    config: EnvironmentConfig,
    layout: RunLayout,
    plan: Plan,
    matrix: Matrix,
    variant: Variant,
    family_name: str,
) -> Callable[[dict[str, Any]], FitResult] | None:
    """Parameters -> the production-protocol fit of `variant` (None: no rows to fit on)."""
    if family_name == LIGHTGBM:
        group = load_group(layout, plan, matrix, config, [variant])
        if group is None:
            return None
        return lambda params: production_fit(
            config, group, variant.variant_id, production_params(config, params)
        )
    train, valid = variant_samples(layout, plan, matrix, config, variant)
    if len(train) == 0 or len(valid) == 0:
        return None
    return lambda params: production_family_fit(
        config, family_name, variant.variant_id, train, valid, params
    )


def production_family_fit(
    config: EnvironmentConfig,
    family_name: str,
    variant_id: str,
    train: Sample,
    valid: Sample,
    params: dict[str, Any],
) -> FitResult:
    """The production protocol for a family fitted through the protocol: production rounds
    and patience, early stopping on the selection period."""
    budget = fit_budget(config, config.train.num_rounds, config.train.early_stopping)
    return fit_family(config, family_name, variant_id, train, valid, params, budget,
                      keep_model=True)  # fmt: skip


def _verdict(
    config: EnvironmentConfig,
    paired: PairedResult,
    default_fit: FitResult,
    tuned_fit: FitResult,
    candidate: dict[str, Any],
) -> dict[str, Any]:
    margin, alpha = config.tune.adopt_margin, config.tune.adopt_alpha
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


def tuned_params(
    config: EnvironmentConfig, layout: RunLayout, gid: str, family_name: str = LIGHTGBM
) -> dict[str, Any]:
    """The group's final parameters: the tuned candidate when stage 4 adopted it, else the
    stage-1 defaults of its family."""
    verdict = adoption_of(layout, gid)
    defaults = family_defaults(config, family_name)
    if verdict.get("adopted"):
        return with_tuned(defaults, verdict["params"], family_name)
    return defaults
