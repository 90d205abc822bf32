"""Walk-forward backtest of a registered model on any bars: the model's family, parameters,
variant and feature columns, refitted per window exactly as the pipeline's backtest stage does.

The registered model is not used to predict: each window refits its family with its
parameters on the window's purged history (`backtest.engine`), so the figures measure the
model's *recipe* (variant, features, family, parameters) on the bars given.

Overlap (`Overlap`): the registry tags every model with its periods, `selection_start` S and
`test_start` T, cut on the timeline of the data it was trained on. Bars before S trained it,
bars in [S, T) early-stopped it and chose its variant, features and parameters. The data
*overlaps* the model's training when it holds at least one bar, of any symbol (every symbol's
bars feed the features), timestamped before T — bars at those times are compared by
timestamp alone, since a series cannot be told apart from the bars it was built on. A model
without a `test_start` tag has unknown periods and counts as overlapping any data. Data from T
on (every bar at or after T) does not overlap. Backtest figures on overlapping data reuse the
bars that chose the recipe (as tested bars, or as the refits' history) and are optimistic;
`run_registered_backtest` refuses them unless `in_sample` is set.

Start of the first test window (`default_start`): T when the data holds bars on both sides of
it (the series the model came from, continued or not: the tested bars are then the ones no
choice saw, as in the pipeline's own backtest); otherwise the first bar from which a whole
training window of the data's own bars precedes it (`make_windows`' default).
"""

from __future__ import annotations

import ast
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from alphafactory.backtest.engine import WindowRecord
from alphafactory.backtest.population import probabilistic_sharpe
from alphafactory.backtest.variant import VariantBacktest, backtest_variant
from alphafactory.backtest.windows import WindowSpec, make_windows
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.data.bars import data_hash
from alphafactory.data.splits import iso_time, label_end_column, parse_time
from alphafactory.errors import AlphaFactoryError, DataError, ModelError
from alphafactory.features import build_feature_matrix
from alphafactory.models import Sample, family, load_model
from alphafactory.registry import ModelRegistry, RegisteredModel
from alphafactory.registry.checksums import download_verified
from alphafactory.registry.records import TAG_SELECTION_START, TAG_TEST_START
from alphafactory.stages.backtest import refit_budget, refit_params, symbol_bars, trade_rule
from alphafactory.stages.common import Matrix
from alphafactory.stages.family_fit import masked_samples
from alphafactory.targets.swing import group_targets
from alphafactory.targets.variants import Variant, parse_variant_id

IN_SAMPLE_WARNING = (
    "IN-SAMPLE: figures are optimistic: the data holds bars before the model's test start, "
    "which trained it or chose its variant, features and parameters"
)


@dataclass(frozen=True)
class ModelRecipe:
    """What a backtest needs of a registered model: family, refit parameters, variant,
    feature columns, the periods it was cut on and the hash of its training data."""

    model: RegisteredModel
    family: str
    params: dict[str, Any]
    variant: Variant
    features: tuple[str, ...]
    selection_start: np.datetime64 | None
    test_start: np.datetime64 | None
    data_hash: str
    best_iteration: int = 0


def _typed(value: str) -> Any:
    """An MLflow parameter (stored as `str(value)`) back as the Python value it was."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _period(tags: dict[str, str], key: str, model_id: str) -> np.datetime64 | None:
    text = tags.get(key, "")
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise ModelError(f"model {model_id}: tag {key}={text!r} is not an ISO time") from None


def load_recipe(registry: ModelRegistry, model: RegisteredModel) -> ModelRecipe:
    """The registered `model`'s recipe; its file is downloaded and checksum-verified, and the
    feature columns are the ones the file itself names."""
    info = registry.info(model.model_id)
    variant_id = info.params.get("variant_id", "")
    try:
        variant = parse_variant_id(variant_id)
    except ValueError:
        raise ModelError(
            f"model {model.model_id} has no usable variant_id parameter ({variant_id!r}): it was "
            "not registered by the pipeline; backtest a model `alphafactory run` registered"
        ) from None
    chosen = family(model.model_type)
    production = {k: _typed(v) for k, v in info.params.items() if k != "variant_id"}
    params = chosen.validate(refit_params(chosen.name, production))
    with tempfile.TemporaryDirectory(prefix="alphafactory-backtest-") as scratch:
        try:
            path = download_verified(registry, model.model_id, model.sha256, scratch)
            fitted = load_model(path, model.sha256)
        except AlphaFactoryError as exc:
            raise ModelError(
                f"model {model.model_id}: its file cannot be loaded ({exc}); re-register it "
                "with `alphafactory run`"
            ) from None
    tags = dict(info.tags)
    return ModelRecipe(
        model=model, family=chosen.name, params=params, variant=variant,
        features=tuple(fitted.feature_names),
        selection_start=_period(tags, TAG_SELECTION_START, model.model_id),
        test_start=_period(tags, TAG_TEST_START, model.model_id),
        data_hash=info.lineage.data_hash,
        best_iteration=int(info.metrics.get("best_iteration", 0) or 0),
    )  # fmt: skip


@dataclass(frozen=True)
class Overlap:
    """How the data's bars lie against the model's test start (module docstring)."""

    test_start: np.datetime64 | None
    bars_before_test_start: int
    first_bar: np.datetime64
    last_bar: np.datetime64

    @property
    def overlaps(self) -> bool:
        return self.test_start is None or self.bars_before_test_start > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "overlaps": self.overlaps,
            "test_start": None if self.test_start is None else iso_time(self.test_start),
            "bars_before_test_start": self.bars_before_test_start,
            "first_bar": iso_time(self.first_bar),
            "last_bar": iso_time(self.last_bar),
        }


def find_overlap(bars: pl.DataFrame, recipe: ModelRecipe) -> Overlap:
    """The data's bars (every symbol) before the model's test start."""
    stamps = bars["timestamp"].cast(pl.Datetime("us")).to_numpy()
    before = 0 if recipe.test_start is None else int((stamps < recipe.test_start).sum())
    return Overlap(recipe.test_start, before, stamps.min(), stamps.max())


def refusal(overlap: Overlap, recipe: ModelRecipe, source: str) -> str:
    """The one-line reason a backtest on overlapping data is refused, with the way out."""
    model_id = recipe.model.model_id
    if overlap.test_start is None:
        return (
            f"model {model_id} has no test_start tag, so its training period is unknown and "
            f"{source} may overlap it; pass --in-sample to backtest anyway (figures optimistic)"
        )
    selection = recipe.selection_start
    periods = (
        f"train before {iso_time(selection)}, selection until {iso_time(overlap.test_start)}"
        if selection is not None
        else f"train and selection before {iso_time(overlap.test_start)}"
    )
    return (
        f"{source} overlaps the training of model {model_id}: {overlap.bars_before_test_start} "
        f"bars (from {iso_time(overlap.first_bar)}) lie before its test start "
        f"{iso_time(overlap.test_start)} ({periods}); pass bars from the test start on, or "
        "--in-sample to run anyway with optimistic figures"
    )


def default_start(timeline: np.ndarray, test_start: np.datetime64 | None) -> np.datetime64 | None:
    """The test start when the symbol's bars lie on both sides of it, else None (module
    docstring)."""
    if test_start is None or not (timeline.min() < test_start <= timeline.max()):
        return None
    return test_start


def recipe_sample(bars: pl.DataFrame, recipe: ModelRecipe, scale: str, source: str) -> Sample:
    """Every labelled event of the recipe's variant on `bars`, with the model's feature
    columns (rebuilt at feature scale `scale`) and the events' raw label ends."""
    variant = recipe.variant
    features = build_feature_matrix(bars, scale).sort("timestamp")
    missing = [name for name in recipe.features if name not in features.columns]
    if missing:
        raise ModelError(
            f"model {recipe.model.model_id} needs feature {missing[0]!r} ({len(missing)} "
            f"missing in all), which {source} does not give at feature scale {scale!r}; pass "
            "bars with every symbol it was trained on, under the environment it came from"
        )
    names = list(recipe.features)
    matrix = Matrix(
        timeline=features["timestamp"].cast(pl.Datetime("us")).to_numpy(),
        values=features.select(names).to_numpy().astype(np.float32, copy=False),
        names=names,
    )
    targets = group_targets(symbol_bars(bars, variant.symbol), [variant])
    labelled = targets[variant.variant_id].is_not_null().to_numpy()
    ends = targets[label_end_column(variant.horizon)].cast(pl.Datetime("us")).to_numpy()
    sample, _ = masked_samples(matrix, targets, variant, labelled, ~labelled, ends)
    return sample


@dataclass
class RegisteredBacktest:
    """A registered model's backtest on some bars, and what it was run on."""

    recipe: ModelRecipe
    source: str
    result: VariantBacktest
    overlap: Overlap
    same_data: bool
    probabilistic_sharpe: float

    @property
    def in_sample(self) -> bool:
        return self.overlap.overlaps

    def to_dict(self) -> dict[str, Any]:
        model, result = self.recipe.model, self.result
        first = result.walk.records[0].window.test_start
        return {
            "model_id": model.model_id,
            "display_name": model.display_name,
            "family": self.recipe.family,
            "variant_id": self.recipe.variant.variant_id,
            "params": self.recipe.params,
            "data": self.source,
            "same_data_as_training": self.same_data,
            "in_sample": self.in_sample,
            "warning": IN_SAMPLE_WARNING if self.in_sample else None,
            "overlap": self.overlap.to_dict(),
            "start": iso_time(first),
            "windows": len(result.walk.records),
            "refits": result.walk.refits,
            "trades": result.metrics.n_trades,
            "metrics": result.metrics.to_dict(),
            "probabilistic_sharpe": self.probabilistic_sharpe,
            "per_window": result.window_metrics,
            "walk_forward": result.walk.to_dict(),
            "skipped": {
                "busy": result.trades.skipped_busy,
                "flat": result.trades.skipped_flat,
                "unusable": result.trades.skipped_unusable,
            },
        }


def tested_sharpe_probability(result: VariantBacktest) -> float:
    """`probabilistic_sharpe` of the tested bars' returns (NaN for fewer than 2 bars)."""
    returns = result.bar_returns
    return probabilistic_sharpe(returns) if returns.size >= 2 else float("nan")


def run_registered_backtest(
    config: EnvironmentConfig,
    recipe: ModelRecipe,
    bars: pl.DataFrame,
    source: str,
    spec: WindowSpec,
    *,
    in_sample: bool = False,
    progress: Callable[[WindowRecord, int], None] | None = None,
) -> RegisteredBacktest:
    """Walk `recipe` forward over `bars` under `config`'s trade rule, costs, budget and
    feature scale, with windows `spec`; refuse overlapping data unless `in_sample`.

    `progress(record, n_windows)` is called after each window.
    """
    overlap = find_overlap(bars, recipe)
    if overlap.overlaps and not in_sample:
        raise DataError(refusal(overlap, recipe, source))
    variant = recipe.variant
    if variant.symbol not in set(bars["symbol"].unique().to_list()):
        raise DataError(
            f"{source} has no bars of {variant.symbol}, which model {recipe.model.model_id} "
            "trades; pass bars that hold that symbol"
        )
    one = symbol_bars(bars, variant.symbol)
    timeline = one["timestamp"].cast(pl.Datetime("us")).to_numpy()
    start = default_start(timeline, recipe.test_start)
    n_windows = len(make_windows(timeline, spec, start))  # fails early when none fits
    sample = recipe_sample(bars, recipe, config.features.scale, source)
    budget = refit_budget(config, recipe.best_iteration)
    result = backtest_variant(
        one, sample, variant, recipe.family, recipe.params, spec, trade_rule(config), budget,
        calendar=config.backtest.calendar, start=start,
        progress=None if progress is None else (lambda record: progress(record, n_windows)),
    )  # fmt: skip
    return RegisteredBacktest(
        recipe=recipe, source=source, result=result, overlap=overlap,
        same_data=data_hash(bars) == recipe.data_hash,
        probabilistic_sharpe=tested_sharpe_probability(result),
    )  # fmt: skip
