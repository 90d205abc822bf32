"""How the publish step judges a production model before registering it: its test-period
skill test (p-value corrected over the run's groups), its walk-forward backtest figures
(`backtest/results.json`, the keys named in `alphafactory.registry.grades`), and its grade
(cohort percentile on test AP, capped by the family's benchmarks and by a poor backtest; F
without skill). See `alphafactory.stages.publish` for the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.errors import DataError
from alphafactory.layout import RunLayout
from alphafactory.registry import grade_cohort
from alphafactory.registry.grades import (
    METRIC_BACKTEST_MAX_DRAWDOWN,
    METRIC_BACKTEST_SHARPE,
    METRIC_BACKTEST_TOTAL_RETURN,
    METRIC_BACKTEST_TRADES,
    METRIC_DEFLATED_SHARPE,
    METRIC_PBO,
    TAG_BACKTEST_TRIALS,
    TAG_DEFLATED_SHARPE_PASS,
    cap_by_backtest,
)
from alphafactory.registry.records import SKILL_NO, SKILL_YES
from alphafactory.skill import SkillResult, decide_skill

KEY_METRIC = "ap"
KEY_P_ADJUSTED = "p_adjusted"


def judge_skill(
    config: EnvironmentConfig, models: dict[str, dict[str, Any]]
) -> dict[str, SkillResult]:
    """Every model's test-period skill, its p-value corrected over the run's groups."""
    raw = {gid: SkillResult.from_dict(m["test"]) for gid, m in models.items()}
    return decide_skill(raw, config.skill.alpha, config.skill.correction)


@dataclass(frozen=True)
class Backtested:
    """A model's walk-forward backtest over the test period, as registry metrics and tags."""

    sharpe: float
    max_drawdown: float
    n_trades: int
    total_return: float
    deflated_sharpe: float
    passes_deflated_sharpe: bool
    n_trials: int
    pbo: float | None

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Backtested:
        """From one group's entry of `backtest/results.json`."""
        metrics, pbo = result["metrics"], result.get("pbo")
        return cls(
            sharpe=float(metrics["sharpe"]),
            max_drawdown=float(metrics["max_drawdown"]),
            n_trades=int(metrics["n_trades"]),
            total_return=float(metrics["total_return"]),
            deflated_sharpe=float(result["deflated_sharpe"]["probability"]),
            passes_deflated_sharpe=bool(result["passes_deflated_sharpe"]),
            n_trials=int(result["n_trials"]),
            pbo=None if pbo is None else float(pbo["pbo"]),
        )

    def metrics(self) -> dict[str, float]:
        figures = {
            METRIC_BACKTEST_SHARPE: self.sharpe,
            METRIC_BACKTEST_MAX_DRAWDOWN: self.max_drawdown,
            METRIC_BACKTEST_TRADES: float(self.n_trades),
            METRIC_BACKTEST_TOTAL_RETURN: self.total_return,
            METRIC_DEFLATED_SHARPE: self.deflated_sharpe,
        }
        if self.pbo is not None:
            figures[METRIC_PBO] = self.pbo
        return figures

    def tags(self) -> dict[str, str]:
        return {
            TAG_BACKTEST_TRIALS: str(self.n_trials),
            TAG_DEFLATED_SHARPE_PASS: SKILL_YES if self.passes_deflated_sharpe else SKILL_NO,
        }


def read_backtests(layout: RunLayout) -> dict[str, Backtested]:
    """Each backtested group's figures; none when the run has no backtest results or ran
    with `backtest.enabled: false`."""
    path = layout.backtest_results
    if not io.exists(path):
        return {}
    results = io.read_json(path)
    if not results.get("enabled"):
        return {}
    backtests: dict[str, Backtested] = {}
    for gid, result in results.get("groups", {}).items():
        try:
            backtests[gid] = Backtested.from_result(result)
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(
                f"{path}: the backtest of group {gid} is malformed ({error!r}); re-run the "
                "backtest stage"
            ) from error
    return backtests


def skill_grades(
    skills: dict[str, SkillResult],
    families: dict[str, str],
    backtests: Mapping[str, Backtested] | None = None,
) -> dict[str, str]:
    """Cohort grades on test AP, each model capped by its own family's benchmarks and by a
    poor backtest; a model without significant skill is F whatever its rank."""
    cohort = {gid: r.test_ap for gid, r in skills.items()}
    grades: dict[str, str] = {}
    for name in sorted(set(families.values())):
        graded = grade_cohort(cohort, name)
        grades.update({gid: graded[gid] for gid in cohort if families[gid] == name})
    for gid, backtest in (backtests or {}).items():
        if gid in grades:
            grades[gid] = cap_by_backtest(grades[gid], backtest.metrics())
    return {gid: grades[gid] if skills[gid].skill else "F" for gid in cohort}


@dataclass(frozen=True)
class Judged:
    """A model's corrected skill test, its backtest (when the run has one) and its grade."""

    skill: SkillResult
    grade: str
    backtest: Backtested | None = None

    def metrics(self) -> dict[str, float]:
        result = self.skill
        return {
            KEY_METRIC: result.test_ap,
            "baseline_ap": result.baseline_ap,
            "test_log_loss": result.test_log_loss,
            "baseline_log_loss": result.baseline_log_loss,
            "p_value": result.p_value,
            KEY_P_ADJUSTED: result.p_adjusted,
            "n_test": float(result.n_events),
            **(self.backtest.metrics() if self.backtest else {}),
        }

    def tags(self) -> dict[str, str]:
        return self.backtest.tags() if self.backtest else {}
