"""Model variants: the grid of (symbol, window, swing type, thresholds, horizon), groups, shards."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from alphafactory.config.schema import GridConfig

SwingType = Literal["high", "low"]


@dataclass(frozen=True, order=True)
class Variant:
    """One model variant: a target definition for one symbol."""

    symbol: str
    window: int
    swing_type: SwingType
    std_threshold: float
    move_threshold: float
    horizon: int

    @property
    def group_id(self) -> str:
        """Group = symbol × window × swing type; one production model per group."""
        return group_id(self.symbol, self.window, self.swing_type)

    @property
    def event_key(self) -> str:
        """Variants with the same event key share the same filtered rows."""
        return f"{self.group_id}_s{self.std_threshold:g}"

    @property
    def variant_id(self) -> str:
        return f"{self.event_key}_m{self.move_threshold:g}_h{self.horizon}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Variant:
        return cls(
            symbol=str(raw["symbol"]),
            window=int(raw["window"]),
            swing_type=raw["swing_type"],
            std_threshold=float(raw["std_threshold"]),
            move_threshold=float(raw["move_threshold"]),
            horizon=int(raw["horizon"]),
        )


_VARIANT_ID = re.compile(
    r"^(?P<symbol>.+)_w(?P<window>\d+)_(?P<swing>high|low)"
    r"_s(?P<std>[0-9.e+-]+)_m(?P<move>[0-9.e+-]+)_h(?P<horizon>\d+)$"
)


def parse_variant_id(variant_id: str) -> Variant:
    """The variant a `variant_id` names (the inverse of `Variant.variant_id`)."""
    match = _VARIANT_ID.match(variant_id)
    if match is None:
        raise ValueError(f"not a variant id: {variant_id!r}")
    return Variant(
        symbol=match["symbol"],
        window=int(match["window"]),
        swing_type=cast(SwingType, match["swing"]),
        std_threshold=float(match["std"]),
        move_threshold=float(match["move"]),
        horizon=int(match["horizon"]),
    )


def group_id(symbol: str, window: int, swing_type: str) -> str:
    return f"{symbol}_w{window}_{swing_type}"


def variant_grid(variant: Variant) -> GridConfig:
    """The one-variant grid that reproduces `variant` (to rebuild its targets elsewhere)."""
    return GridConfig(
        windows=[variant.window],
        swing_types=[variant.swing_type],
        std_thresholds=[variant.std_threshold],
        move_thresholds=[variant.move_threshold],
        horizons=[variant.horizon],
    )


def expand_grid(grid: GridConfig, symbols: Sequence[str]) -> list[Variant]:
    """Every variant of the grid for these symbols, in a stable order."""
    axes = itertools.product(
        symbols,
        grid.windows,
        grid.swing_types,
        grid.std_thresholds,
        grid.move_thresholds,
        grid.horizons,
    )
    return [Variant(*combo) for combo in axes]


def group_variants(variants: Iterable[Variant]) -> dict[str, list[Variant]]:
    """Variants by group id, groups in first-seen order."""
    groups: dict[str, list[Variant]] = {}
    for variant in variants:
        groups.setdefault(variant.group_id, []).append(variant)
    return groups


def plan_shards(group_ids: Sequence[str], n_shards: int) -> list[list[str]]:
    """Split groups into at most `n_shards` non-empty shards of near-equal size.

    A whole group stays in one shard so that its data is loaded and binned once.
    """
    count = max(1, min(n_shards, len(group_ids)))
    shards: list[list[str]] = [[] for _ in range(count)]
    for index, gid in enumerate(group_ids):
        shards[index % count].append(gid)
    return [shard for shard in shards if shard]
