"""The LightGBM search space of the source, and how later stages narrow and focus it.

Every tuned parameter is a small ordered grid (the source's lists), searched as categorical
choices; later stages keep sub-grids, so any point they propose lies on the source grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from alphafactory.errors import ConfigError

Value = int | float
#: The source's tuned parameter grids, in ascending order.
SOURCE_GRIDS: dict[str, tuple[Value, ...]] = {
    "num_leaves": (30, 50, 80),
    "max_depth": (5, 6, 7, 9),
    "feature_fraction": (0.7,),
    "learning_rate": (0.01, 0.05, 0.1),
    "lambda_l1": (0.0, 0.01, 0.1),
}
#: min_child_samples is not searched: it is this share of the training rows (at least 5).
MIN_CHILD_FRACTION = 0.01
MIN_CHILD_FLOOR = 5


@dataclass(frozen=True)
class SearchSpace:
    """Ordered value grids per parameter (each a non-empty, ascending tuple)."""

    grids: Mapping[str, tuple[Value, ...]]

    def __post_init__(self) -> None:
        for name, grid in self.grids.items():
            if not grid or list(grid) != sorted(set(grid)):
                raise ConfigError(f"search space '{name}': {grid} must be non-empty, ascending")

    def contains(self, params: Mapping[str, Any]) -> bool:
        """Whether every searched parameter of `params` lies on this space's grids."""
        return all(params.get(name) in grid for name, grid in self.grids.items())

    def is_subset_of(self, other: SearchSpace) -> bool:
        return set(self.grids) == set(other.grids) and all(
            set(grid) <= set(other.grids[name]) for name, grid in self.grids.items()
        )

    def size(self) -> int:
        """Number of distinct points in the space."""
        count = 1
        for grid in self.grids.values():
            count *= len(grid)
        return count

    def to_dict(self) -> dict[str, list[Value]]:
        return {name: list(grid) for name, grid in self.grids.items()}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Sequence[Value]]) -> SearchSpace:
        return cls({name: tuple(values) for name, values in payload.items()})


def broad_space() -> SearchSpace:
    """Stage 2: the full grids of the source."""
    return SearchSpace(dict(SOURCE_GRIDS))


def min_child_samples(n_train_rows: int) -> int:
    """1% of the training rows, at least 5 (the source's adaptive leaf size)."""
    return max(MIN_CHILD_FLOOR, round(MIN_CHILD_FRACTION * n_train_rows))


def suggest_params(
    trial: optuna.Trial, space: SearchSpace, n_train_rows: int | None = None
) -> dict[str, Any]:
    """Ask `trial` for one point of `space`; with `n_train_rows` (LightGBM spaces), adds
    min_child_samples for that many training rows."""
    params: dict[str, Any] = {
        name: trial.suggest_categorical(name, list(grid)) for name, grid in space.grids.items()
    }
    if n_train_rows is not None:
        params["min_child_samples"] = min_child_samples(n_train_rows)
    return params


def snap_to_space(params: Mapping[str, Any], space: SearchSpace) -> dict[str, Value]:
    """The grid point nearest to `params` (e.g. stage-1 defaults such as num_leaves=31).

    Missing parameters take the grid's middle value.
    """
    snapped: dict[str, Value] = {}
    for name, grid in space.grids.items():
        value = params.get(name)
        if value is None:
            snapped[name] = grid[(len(grid) - 1) // 2]
        else:
            snapped[name] = min(grid, key=lambda choice: (abs(choice - value), choice))
    return snapped


def _index_of(grid: tuple[Value, ...], value: Any, name: str) -> int:
    if value not in grid:
        raise ConfigError(f"parameter '{name}'={value!r} is not on the grid {list(grid)}")
    return grid.index(value)


def narrowed_space(space: SearchSpace, top_params: Sequence[Mapping[str, Any]]) -> SearchSpace:
    """Stage 3: per parameter, the grid span covered by the best stage-2 points.

    `top_params` are the best trials' parameters (best first). Each grid is cut to the
    contiguous run between the smallest and largest value they used, so the narrowed space
    contains every one of them and stays a subset of `space`.
    """
    if not top_params:
        return space
    grids: dict[str, tuple[Value, ...]] = {}
    for name, grid in space.grids.items():
        used = [_index_of(grid, params[name], name) for params in top_params]
        grids[name] = grid[min(used) : max(used) + 1]
    return SearchSpace(grids)


def focused_space(space: SearchSpace, best: Mapping[str, Any], radius: int = 1) -> SearchSpace:
    """Stage 4: the best point and its `radius` neighbours on each of `space`'s grids."""
    grids: dict[str, tuple[Value, ...]] = {}
    for name, grid in space.grids.items():
        at = _index_of(grid, best[name], name)
        grids[name] = grid[max(0, at - radius) : at + radius + 1]
    return SearchSpace(grids)


def top_trial_params(
    trials: Iterable[optuna.trial.FrozenTrial], space: SearchSpace, k: int = 5
) -> list[dict[str, Any]]:
    """Parameters of the `k` best completed trials (highest value first) that lie in `space`."""
    done = [
        trial
        for trial in trials
        if trial.state == optuna.trial.TrialState.COMPLETE
        and trial.value is not None
        and space.contains(trial.params)
    ]
    done.sort(key=lambda trial: (-float(trial.value or 0.0), trial.number))
    return [{name: trial.params[name] for name in space.grids} for trial in done[:k]]
