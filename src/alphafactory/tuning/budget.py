"""One compute budget for the four tune stages: planned shares, usage, carry-forward, a ledger.

Compute is counted in core-seconds: wall-clock seconds of a fit or trial times the threads it
used (LightGBM ``num_threads``), so a budget means the same on a laptop and on a 16-core pod,
and eight 2-thread fits in parallel cost what one 16-thread fit of the same length costs.
A budget may instead count trials (``total_trials``) when runtimes are not comparable.

Each stage's allowance is its planned share plus whatever earlier stages left unspent (or
minus what they overspent). The ledger is plain JSON, so each pipeline task loads the one the
previous stage wrote to the run folder, charges its own usage and saves it again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from alphafactory import io
from alphafactory.errors import ConfigError

Unit = Literal["core_seconds", "trials"]
DEFAULT_SHARES: dict[int, float] = {1: 0.25, 2: 0.15, 3: 0.35, 4: 0.25}


def run_budget(total_core_seconds: float | None, shares: Mapping[int, float]) -> Budget:
    """A run's budget: `total_core_seconds`, or effectively unbounded when None."""
    return Budget(total_core_seconds=total_core_seconds or 1e12, shares=dict(shares))


def core_seconds(wall_seconds: float, threads: int) -> float:
    """Core-seconds of work that took `wall_seconds` on `threads` threads."""
    return max(0.0, wall_seconds) * max(1, threads)


@dataclass
class StageUsage:
    """What one stage has consumed so far."""

    core_seconds: float = 0.0
    trials: int = 0


class Budget:
    """A total compute budget split across stages by `shares` (fractions summing to <= 1).

    Give exactly one of `total_core_seconds` and `total_trials`; `usage` restores a ledger.
    """

    def __init__(
        self,
        total_core_seconds: float | None = None,
        total_trials: float | None = None,
        shares: Mapping[int, float] | None = None,
        usage: Mapping[int, StageUsage] | None = None,
    ) -> None:
        if (total_core_seconds is None) == (total_trials is None):
            raise ConfigError("give exactly one of total_core_seconds and total_trials")
        self.unit: Unit = "trials" if total_trials is not None else "core_seconds"
        self.total = float(total_trials if total_trials is not None else total_core_seconds or 0)
        chosen = DEFAULT_SHARES if shares is None else shares
        self.shares = {int(stage): float(share) for stage, share in chosen.items()}
        self.usage = {
            int(stage): StageUsage(u.core_seconds, u.trials) for stage, u in (usage or {}).items()
        }
        if self.total < 0:
            raise ConfigError(f"budget total must be >= 0, got {self.total}")
        if any(share < 0 for share in self.shares.values()) or sum(self.shares.values()) > 1.0001:
            raise ConfigError(f"budget shares {self.shares} must be >= 0 and sum to at most 1")

    @classmethod
    def _make(
        cls, total: float, unit: Unit, shares: Mapping[int, float], usage: Mapping[int, StageUsage]
    ) -> Budget:
        if unit == "trials":
            return cls(total_trials=total, shares=shares, usage=usage)
        return cls(total_core_seconds=total, shares=shares, usage=usage)

    def stages(self) -> list[int]:
        return sorted(self.shares)

    def _share(self, stage: int) -> float:
        if stage not in self.shares:
            raise ConfigError(f"stage {stage} has no budget share; known: {self.stages()}")
        return self.shares[stage]

    def planned(self, stage: int) -> float:
        """The stage's own share of the total."""
        return self.total * self._share(stage)

    def used(self, stage: int) -> float:
        """Usage of the stage in the budget's unit."""
        usage = self.usage.get(stage, StageUsage())
        return float(usage.trials) if self.unit == "trials" else usage.core_seconds

    def carried(self, stage: int) -> float:
        """Unspent (positive) or overspent (negative) budget of all earlier stages."""
        self._share(stage)
        return sum(self.planned(s) - self.used(s) for s in self.stages() if s < stage)

    def stage_allowance(self, stage: int) -> float:
        """What the stage may use in all: its share plus the carried balance, never below 0."""
        return max(0.0, self.planned(stage) + self.carried(stage))

    def remaining(self, stage: int) -> float:
        return self.stage_allowance(stage) - self.used(stage)

    def should_start_trial(self, stage: int) -> bool:
        """Whether a new trial may start: False once the stage's allowance is spent."""
        return self.remaining(stage) > 0

    def charge(self, stage: int, core_seconds: float, trials: int = 1) -> None:
        """Record `core_seconds` of work (and `trials` finished trials or fits) for a stage."""
        self._share(stage)
        usage = self.usage.setdefault(stage, StageUsage())
        usage.core_seconds += max(0.0, core_seconds)
        usage.trials += trials

    @contextlib.contextmanager
    def meter(self, stage: int, threads: int, trials: int = 1) -> Iterator[None]:
        """Charge the wall time of the block times `threads` to `stage`, even if it raises."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.charge(stage, core_seconds(time.perf_counter() - started, threads), trials)

    def shard(self, stage: int, n_shards: int) -> Budget:
        """A budget holding `1/n_shards` of the stage's remaining allowance, for one shard task.

        The shard charges its own copy; the fan-in adds each shard's usage back with
        :meth:`absorb`.
        """
        if n_shards < 1:
            raise ConfigError(f"n_shards must be >= 1, got {n_shards}")
        return Budget._make(max(0.0, self.remaining(stage)) / n_shards, self.unit, {stage: 1.0}, {})

    def absorb(self, stage: int, shard_budget: Budget) -> None:
        """Add a shard budget's usage of `stage` to this budget."""
        usage = shard_budget.usage.get(stage, StageUsage())
        self.charge(stage, usage.core_seconds, usage.trials)

    def report(self) -> list[dict[str, Any]]:
        """One row per stage: share, planned, carried, allowance, used, trials, remaining."""
        rows = []
        for stage in self.stages():
            usage = self.usage.get(stage, StageUsage())
            rows.append(
                {
                    "stage": stage,
                    "unit": self.unit,
                    "share": self.shares[stage],
                    "planned": round(self.planned(stage), 6),
                    "carried": round(self.carried(stage), 6),
                    "allowance": round(self.stage_allowance(stage), 6),
                    "used": round(self.used(stage), 6),
                    "core_seconds": round(usage.core_seconds, 6),
                    "trials": usage.trials,
                    "remaining": round(self.remaining(stage), 6),
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "unit": self.unit,
            "shares": {str(stage): share for stage, share in self.shares.items()},
            "usage": {
                str(stage): {"core_seconds": usage.core_seconds, "trials": usage.trials}
                for stage, usage in sorted(self.usage.items())
            },
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Budget:
        unit = payload.get("unit", "core_seconds")
        if unit not in ("core_seconds", "trials"):
            raise ConfigError(f"budget ledger: unknown unit {unit!r}")
        usage = {
            int(stage): StageUsage(float(values["core_seconds"]), int(values["trials"]))
            for stage, values in payload.get("usage", {}).items()
        }
        shares = {int(stage): float(share) for stage, share in payload["shares"].items()}
        return cls._make(float(payload["total"]), unit, shares, usage)

    def save(self, uri: str) -> None:
        """Write the ledger as JSON (any fsspec URI; atomic replace)."""
        io.write_json(uri, self.to_dict())

    @classmethod
    def load(cls, uri: str) -> Budget:
        return cls.from_dict(io.read_json(uri))


def format_report(budget: Budget) -> str:
    """The ledger as a Markdown table (planned vs used per stage), for stage reports."""
    header = "| stage | share | planned | carried | allowance | used | trials | remaining |"
    lines = [f"Budget in {budget.unit}", "", header, "|" + "---|" * 8]
    for row in budget.report():
        cells = [row["stage"], f"{row['share']:.0%}"] + [
            f"{row[key]:.1f}" for key in ("planned", "carried", "allowance", "used")
        ]
        cells += [row["trials"], f"{row['remaining']:.1f}"]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)
