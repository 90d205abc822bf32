"""The run folder: where every stage's outputs live, and the plan prepare writes there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alphafactory import io
from alphafactory.data.splits import Periods
from alphafactory.errors import DataError
from alphafactory.names import SAFE_NAME_RULE, path_part_problem
from alphafactory.targets.variants import Variant

#: The file name of a production model's bundle (`alphafactory.models.save_model`) wherever
#: it is stored by itself (cache entry, Vertex folder); in the run folder it is named after
#: its group, with the same suffix.
MODEL_FILE = "model.zip"
MODEL_SUFFIX = ".zip"


@dataclass(frozen=True)
class RunLayout:
    """Paths of a run folder (a local path or a URI under the pipeline root)."""

    root: str

    def path(self, *parts: str) -> str:
        """`root/part/part...`; each part is one name, so no part can leave the run folder.

        Names are checked when data and config load; this is the second line of defence.
        """
        for part in parts:
            problem = path_part_problem(part)
            if problem is not None:
                raise DataError(
                    f"run folder {self.root}: path part {part!r} {problem}; every name in a "
                    f"run folder (symbols, group ids) must be {SAFE_NAME_RULE}"
                )
        return io.join(self.root, *parts)

    @property
    def plan(self) -> str:
        return self.path("prepare", "plan.json")

    @property
    def features(self) -> str:
        return self.path("prepare", "features.parquet")

    @property
    def bars_origin(self) -> str:
        """Where the bars came from (`alphafactory.data.sources.BarsOrigin`): the source, the
        range, and whether they are a synthetic fallback."""
        return self.path("prepare", "source.json")

    @property
    def ground_truth(self) -> str:
        """What the synthetic generator planted (written only for synthetic data)."""
        return self.path("prepare", "ground_truth.json")

    def targets(self, group_id: str) -> str:
        return self.path("prepare", "targets", f"{group_id}.parquet")

    @property
    def selected_features(self) -> str:
        return self.path("screen", "selected_features.json")

    def screen_shard(self, shard: int) -> str:
        return self.path("screen", "shards", f"shard-{shard:03d}.json")

    def tune_shard(self, stage: int, shard: int) -> str:
        return self.path("tune", f"stage{stage}", "shards", f"shard-{shard:03d}.json")

    def stage1_predictions(self, shard: int) -> str:
        """Selection-period probabilities of every stage-1 LightGBM fit of one shard."""
        return self.path("tune", "stage1", "predictions", f"shard-{shard:03d}.parquet")

    @property
    def budget(self) -> str:
        """The tune stages' compute-budget ledger."""
        return self.path("tune", "budget.json")

    def tune_winners(self, stage: int) -> str:
        return self.path("tune", f"stage{stage}", "winners.json")

    def model(self, group_id: str) -> str:
        return self.path("train", "models", f"{group_id}{MODEL_SUFFIX}")

    def train_shard(self, shard: int) -> str:
        return self.path("train", "shards", f"shard-{shard:03d}.json")

    def backtest_shard(self, shard: int) -> str:
        return self.path("backtest", "shards", f"shard-{shard:03d}.json")

    @property
    def backtest_results(self) -> str:
        return self.path("backtest", "results.json")

    def backtest_bars(self, group_id: str) -> str:
        """The champion's tested bars: position, return, equity and drawdown per bar."""
        return self.path("backtest", "equity", f"{group_id}.parquet")

    def backtest_trades(self, group_id: str) -> str:
        return self.path("backtest", "trades", f"{group_id}.parquet")

    @property
    def predictions(self) -> str:
        return self.path("infer", "predictions.parquet")

    @property
    def errors(self) -> str:
        """Folder of failed tasks' tracebacks, one `<task>.txt` each."""
        return self.path("errors")

    def task_error(self, task: str) -> str:
        return self.path("errors", f"{task}.txt")


@dataclass(frozen=True)
class Plan:
    """The run's plan: symbols, groups with their variants, shards, timing facts."""

    symbols: list[str]
    groups: dict[str, list[Variant]]
    shards: list[list[str]]
    bar_seconds: float
    periods: Periods
    data_hash: str
    n_rows: int

    def variant(self, group_id: str, variant_id: str) -> Variant:
        """The variant `variant_id` of group `group_id` (e.g. the group's stage-1 winner)."""
        return next(v for v in self.groups[group_id] if v.variant_id == variant_id)

    @property
    def n_variants(self) -> int:
        return sum(len(v) for v in self.groups.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbols": self.symbols,
            "groups": {gid: [v.to_dict() for v in vs] for gid, vs in self.groups.items()},
            "shards": self.shards,
            "bar_seconds": self.bar_seconds,
            "periods": self.periods.to_dict(),
            "data_hash": self.data_hash,
            "n_rows": self.n_rows,
            "n_variants": self.n_variants,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Plan:
        return cls(
            symbols=list(raw["symbols"]),
            groups={g: [Variant.from_dict(v) for v in vs] for g, vs in raw["groups"].items()},
            shards=[list(s) for s in raw["shards"]],
            bar_seconds=float(raw["bar_seconds"]),
            periods=Periods.from_dict(raw["periods"]),
            data_hash=str(raw["data_hash"]),
            n_rows=int(raw["n_rows"]),
        )


def read_plan(layout: RunLayout) -> Plan:
    return Plan.from_dict(io.read_json(layout.plan))
