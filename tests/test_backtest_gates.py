"""Backtest figures in the registry and the promotion's backtest gates, on the tiny run's real
SQLite registry: every registered model carries its group's `backtest/results.json` figures,
a poor backtest caps the grade at C, and `promote` refuses champions that fail a configured
gate (or have no backtest) with every failing figure and its limit."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny_run import TinyRuns, clone_runs

from alphafactory import io
from alphafactory.config import load_environment, validate_environment
from alphafactory.errors import ConfigError, DataError
from alphafactory.layout import RunLayout
from alphafactory.registry import (
    CHAMPION,
    ModelInfo,
    ModelRegistry,
    RegisteredModel,
    SemVer,
    registered_model_name,
)
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
    grade_at_least,
)
from alphafactory.stages import run_infer
from alphafactory.stages.publish import read_backtests
from pipelines.local import compiled_path, compiled_text
from pipelines.promote import BACKTEST_GATES, backtest_failures, promote

REPO = Path(__file__).resolve().parents[1]
BACKTEST_METRICS = (
    METRIC_BACKTEST_SHARPE,
    METRIC_BACKTEST_MAX_DRAWDOWN,
    METRIC_BACKTEST_TRADES,
    METRIC_BACKTEST_TOTAL_RETURN,
    METRIC_DEFLATED_SHARPE,
    METRIC_PBO,
)
SHIPPED = "promotion.min_deflated_sharpe 0.95, promotion.max_drawdown 0.30, promotion.min_trades 30"
NO_GATES = {"min_deflated_sharpe": None, "max_drawdown": None, "min_trades": None}


def _results(runs: TinyRuns) -> dict[str, Any]:
    return dict(json.loads((runs.run_dir / "backtest" / "results.json").read_text()))


def _registry(runs: TinyRuns) -> ModelRegistry:
    return ModelRegistry(root=runs.runs_dir / "registry")


def _uri(runs: TinyRuns) -> str:
    return f"sqlite:///{runs.runs_dir / 'registry' / 'mlflow.db'}"


def _version(registry: ModelRegistry, gid: str, semver: str) -> RegisteredModel:
    found = [m for m in registry.list_models(group=gid) if str(m.semver) == semver]
    assert len(found) == 1, (gid, semver, found)
    return found[0]


def _info(registry: ModelRegistry, gid: str, semver: str) -> ModelInfo:
    return registry.info(_version(registry, gid, semver).model_id)


def _champion(registry: ModelRegistry, gid: str) -> RegisteredModel:
    champion = registry.champion(registered_model_name(gid))
    assert champion is not None, gid
    return champion


def _assert_carries(info: ModelInfo, result: dict[str, Any]) -> None:
    """The registry metrics and tags of a model equal its group's backtest result."""
    metrics = result["metrics"]
    assert info.metrics[METRIC_BACKTEST_SHARPE] == metrics["sharpe"]
    assert info.metrics[METRIC_BACKTEST_MAX_DRAWDOWN] == metrics["max_drawdown"]
    assert info.metrics[METRIC_BACKTEST_TRADES] == metrics["n_trades"]
    assert info.metrics[METRIC_BACKTEST_TOTAL_RETURN] == metrics["total_return"]
    assert info.metrics[METRIC_DEFLATED_SHARPE] == result["deflated_sharpe"]["probability"]
    if result["pbo"] is None:
        assert METRIC_PBO not in info.metrics
    else:
        assert info.metrics[METRIC_PBO] == result["pbo"]["pbo"]
    assert info.tags[TAG_BACKTEST_TRIALS] == str(result["n_trials"])
    assert info.tags[TAG_DEFLATED_SHARPE_PASS] == (
        "yes" if result["passes_deflated_sharpe"] else "no"
    )


# ---------------------------------------------------------------------------- the registry


def test_registered_models_carry_the_backtest_results(tiny_runs: TinyRuns) -> None:
    results = _results(tiny_runs)
    assert results["enabled"] and len(results["groups"]) == 8
    registry = _registry(tiny_runs)
    for gid, result in results["groups"].items():
        _assert_carries(_info(registry, gid, "1.0.0"), result)


@pytest.fixture(scope="module")
def edited(tiny_runs: TinyRuns, tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    """infer once more as a new run (run-2) on a copy whose backtest results were edited,
    and make its BTC versions (1.0.1) the champions, so they have known figures: BTC_w3_high
    a weak deflated Sharpe and a poor drawdown, BTC_w10_high NaN figures and few trades,
    BTC_w3_low no backtest at all, BTC_w10_low a PBO and its own (passing) figures."""
    runs = clone_runs(tiny_runs, tmp_path_factory.mktemp("backtest-gates"))
    path = runs.run_dir / "backtest" / "results.json"
    results = json.loads(path.read_text())
    groups = results["groups"]
    groups["BTC_w3_high"]["deflated_sharpe"]["probability"] = 0.41
    groups["BTC_w3_high"]["metrics"]["max_drawdown"] = 0.34
    groups["BTC_w10_high"]["metrics"].update(sharpe=math.nan, n_trades=12)
    groups["BTC_w10_high"]["deflated_sharpe"]["probability"] = math.nan
    groups["BTC_w10_low"]["pbo"] = {"pbo": 0.25, "n_strategies": 4, "n_combinations": 70,
                                    "n_splits": 8, "median_logit": 0.6}  # fmt: skip
    del groups["BTC_w3_low"]
    path.write_text(json.dumps(results))
    second = runs.runs_dir / "run-2"  # a new run: publishing run-1 again would reuse its versions
    shutil.copytree(runs.run_dir, second)
    run_infer(runs.config, str(second))
    registry = _registry(runs)
    for gid in ("BTC_w3_high", "BTC_w10_high", "BTC_w3_low", "BTC_w10_low"):
        name = registered_model_name(gid)
        assert str(_champion(registry, gid).semver) == "1.0.0"  # equal test AP: a tie keeps it
        registry.set_alias(name, SemVer(1, 0, 1), CHAMPION)  # the edited versions as champions
        assert str(_champion(registry, gid).semver) == "1.0.1"
    return runs


def test_nan_figures_a_pbo_and_a_group_without_backtest(edited: TinyRuns) -> None:
    registry = _registry(edited)
    nan = _info(registry, "BTC_w10_high", "1.0.1")
    assert math.isnan(nan.metrics[METRIC_BACKTEST_SHARPE])  # NaN round-trips through MLflow
    assert math.isnan(nan.metrics[METRIC_DEFLATED_SHARPE])
    assert nan.metrics[METRIC_BACKTEST_TRADES] == 12
    assert _info(registry, "BTC_w10_low", "1.0.1").metrics[METRIC_PBO] == 0.25
    missing = _info(registry, "BTC_w3_low", "1.0.1")
    assert not set(BACKTEST_METRICS) & set(missing.metrics)
    assert not {TAG_BACKTEST_TRIALS, TAG_DEFLATED_SHARPE_PASS} & set(missing.tags)
    assert missing.metrics["ap"] == _info(registry, "BTC_w3_low", "1.0.0").metrics["ap"]
    groups = _results(edited)["groups"]
    for gid in ("BTC_w10_low", "BTC_w3_high", "ETH_w3_high", "ETH_w10_low"):
        _assert_carries(_info(registry, gid, "1.0.1"), groups[gid])


def test_a_poor_backtest_caps_the_grade_at_c(edited: TinyRuns) -> None:
    registry = _registry(edited)
    poor_before = _version(registry, "BTC_w3_high", "1.0.0").grade
    assert not grade_at_least("C", poor_before)  # graded above C on its own backtest
    assert _version(registry, "BTC_w3_high", "1.0.1").grade == "C"  # drawdown 0.34 >= 0.30
    # NaN figures and a missing backtest cap nothing: the grades are those of 1.0.0
    for gid in ("BTC_w10_high", "BTC_w3_low", "BTC_w10_low"):
        assert _version(registry, gid, "1.0.1").grade == _version(registry, gid, "1.0.0").grade


@pytest.mark.parametrize(
    "grade, sharpe, drawdown, capped",
    [("A", 0.5, 0.1, "C"), ("A", 0.51, 0.29, "A"), ("S", 3.0, 0.30, "C"), ("B-", -1.0, 0.5, "C"),
     ("C", 0.1, 0.1, "C"), ("D", 0.1, 0.9, "D"), ("A+", math.nan, math.nan, "A+")],
)  # fmt: skip
def test_cap_by_backtest(grade: str, sharpe: float, drawdown: float, capped: str) -> None:
    metrics = {METRIC_BACKTEST_SHARPE: sharpe, METRIC_BACKTEST_MAX_DRAWDOWN: drawdown}
    assert cap_by_backtest(grade, metrics) == capped
    assert cap_by_backtest(grade, {}) == grade


def test_read_backtests_without_results_or_disabled(tmp_path: Path) -> None:
    layout = RunLayout(str(tmp_path))
    assert read_backtests(layout) == {}  # no results file: no backtest metrics, no error
    io.write_json(layout.backtest_results, {"enabled": False, "groups": {}})
    assert read_backtests(layout) == {}
    io.write_json(layout.backtest_results, {"enabled": True, "groups": {"BTC_w3_high": {}}})
    with pytest.raises(DataError, match=r"results.json: the backtest of group BTC_w3_high is "):
        read_backtests(layout)


# ---------------------------------------------------------------------------- the gates


def _repo(tmp_path: Path, **promotion: Any) -> Path:
    """A copy of manifests/ and pipelines/ whose staging environment sets `promotion` keys,
    its compiled spec fresh again."""
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("manifests", "pipelines"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=ignore)
    if promotion:
        path = tmp_path / "pipelines" / "environments" / "staging.yaml"
        raw = yaml.safe_load(path.read_text())
        raw["promotion"].update(promotion)
        path.write_text(yaml.safe_dump(raw))
        spec = compiled_text(load_environment(str(path), use_env_vars=False))
        compiled_path("staging", tmp_path).write_text(spec)
    return tmp_path


def _refusal(repo: Path, runs: TinyRuns) -> str:
    with pytest.raises(ConfigError) as error:
        promote(repo, "staging", "production", tracking_uri=_uri(runs), dry_run=True)
    return str(error.value)


def test_gates_list_every_failing_champion_with_its_figures(
    edited: TinyRuns, tmp_path: Path
) -> None:
    registry = _registry(edited)
    ids = {gid: _champion(registry, gid).model_id for gid in ("BTC_w10_high", "BTC_w3_high",
                                                                "BTC_w3_low")}  # fmt: skip
    message = _refusal(_repo(tmp_path, min_grade="C"), edited)
    assert message == (
        f"refusing to promote 'staging': champions failing the backtest gates ({SHIPPED}): "
        f"{ids['BTC_w10_high']} (deflated Sharpe nan < 0.95; trades 12 < 30), "
        f"{ids['BTC_w3_high']} (deflated Sharpe 0.41 < 0.95; max drawdown 0.34 > 0.30), "
        f"{ids['BTC_w3_low']} (no backtest metrics; re-run with backtest.enabled)"
    )


def test_the_capped_grade_meets_min_grade_first(edited: TinyRuns, tmp_path: Path) -> None:
    champion = _champion(_registry(edited), "BTC_w3_high")
    assert _refusal(_repo(tmp_path), edited) == (
        "refusing to promote 'staging': champions below promotion.min_grade B: "
        f"{champion.model_id} (grade C)"
    )


def test_a_champion_without_backtest_fails_any_single_gate(
    edited: TinyRuns, tmp_path: Path
) -> None:
    message = _refusal(_repo(tmp_path, min_grade="C", **{**NO_GATES, "max_drawdown": 0.5}),
                       edited)  # fmt: skip
    missing = _champion(_registry(edited), "BTC_w3_low").model_id
    assert message == (
        "refusing to promote 'staging': champions failing the backtest gates "
        f"(promotion.max_drawdown 0.50): {missing} (no backtest metrics; re-run with "
        "backtest.enabled)"
    )


def test_the_shipped_gates_on_the_tiny_run(tiny_runs: TinyRuns, tmp_path: Path) -> None:
    """staging.yaml as shipped: the champions whose results.json figures fail, and no other."""
    registry = _registry(tiny_runs)
    groups = _results(tiny_runs)["groups"]
    champions = {gid: _champion(registry, gid).model_id for gid in groups if gid[:3] == "BTC"}
    assert len(champions) == 4 and registry.champion(registered_model_name("ETH_w3_high")) is None
    failing = sorted(
        champions[gid]
        for gid in champions
        if groups[gid]["deflated_sharpe"]["probability"] < 0.95
        or groups[gid]["metrics"]["max_drawdown"] > 0.30
        or groups[gid]["metrics"]["n_trades"] < 30
    )
    assert failing, "the tiny run's champions all pass: this test no longer tests a refusal"
    message = _refusal(_repo(tmp_path), tiny_runs)
    prefix = f"refusing to promote 'staging': champions failing the backtest gates ({SHIPPED}): "
    assert message.startswith(prefix)
    listed = [item.split(" (", 1)[0] for item in message.removeprefix(prefix).split("), ")]
    assert listed == failing
    for gid, model_id in champions.items():
        if model_id in failing and groups[gid]["deflated_sharpe"]["probability"] < 0.95:
            assert f"{model_id} (deflated Sharpe 0." in message


def test_min_trades_beyond_reach_fails_every_champion(tiny_runs: TinyRuns, tmp_path: Path) -> None:
    registry = _registry(tiny_runs)
    groups = _results(tiny_runs)["groups"]
    repo = _repo(tmp_path, **{**NO_GATES, "min_trades": 10**6})
    listed = ", ".join(
        f"{champion.model_id} (trades {groups[champion.group]['metrics']['n_trades']} < 1000000)"
        for champion in sorted(
            (_champion(registry, gid) for gid in groups if gid[:3] == "BTC"),
            key=lambda c: c.name,
        )
    )
    assert _refusal(repo, tiny_runs) == (
        "refusing to promote 'staging': champions failing the backtest gates "
        f"(promotion.min_trades 1000000): {listed}"
    )


def test_a_gate_every_champion_passes_lets_the_promotion_through(
    tiny_runs: TinyRuns, tmp_path: Path
) -> None:
    groups = _results(tiny_runs)["groups"]
    assert all(groups[g]["deflated_sharpe"]["probability"] >= 0.5 for g in groups if g[:3] == "BTC")
    repo = _repo(tmp_path, **{**NO_GATES, "min_deflated_sharpe": 0.5})
    result = promote(repo, "staging", "production", tracking_uri=_uri(tiny_runs), dry_run=True)
    assert "+  promoted_from: staging" in result.diff


# ---------------------------------------------------------------------------- the figures


def test_backtest_failures_at_the_limits() -> None:
    config = load_environment("staging", use_env_vars=False).promotion
    at_limits = {METRIC_DEFLATED_SHARPE: 0.95, METRIC_BACKTEST_MAX_DRAWDOWN: 0.30,
                 METRIC_BACKTEST_TRADES: 30.0}  # fmt: skip
    assert backtest_failures(config, at_limits) == []  # limits are inclusive
    just_off = {METRIC_DEFLATED_SHARPE: 0.9499, METRIC_BACKTEST_MAX_DRAWDOWN: 0.3001,
                METRIC_BACKTEST_TRADES: 29.0}  # fmt: skip
    assert backtest_failures(config, just_off) == [
        "deflated Sharpe 0.9499 < 0.95", "max drawdown 0.3001 > 0.30", "trades 29 < 30"
    ]  # fmt: skip
    nan = {**at_limits, METRIC_BACKTEST_MAX_DRAWDOWN: math.nan}
    assert backtest_failures(config, nan) == ["max drawdown nan > 0.30"]
    ungated = config.model_copy(update=NO_GATES)
    assert backtest_failures(ungated, {}) == []  # no gate set: no backtest needed
    assert [gate.field for gate in BACKTEST_GATES] == list(NO_GATES)


# ---------------------------------------------------------------------------- the config


def test_shipped_gates() -> None:
    for name in ("staging", "production"):
        promotion = load_environment(name, use_env_vars=False).promotion
        assert (promotion.min_deflated_sharpe, promotion.max_drawdown, promotion.min_trades) == (
            0.95, 0.30, 30
        )  # fmt: skip
    local = load_environment("local-dev", use_env_vars=False).promotion
    assert (local.min_deflated_sharpe, local.max_drawdown, local.min_trades) == (None, None, None)


@pytest.mark.parametrize(
    "field, value",
    [("min_deflated_sharpe", 0), ("min_deflated_sharpe", 1.0), ("min_deflated_sharpe", "0.95"),
     ("min_deflated_sharpe", True), ("max_drawdown", 0.0), ("max_drawdown", 1.5),
     ("max_drawdown", -0.1), ("min_trades", 0), ("min_trades", 2.5), ("min_trades", True),
     ("min_trades", "30")],
)  # fmt: skip
def test_gate_errors_name_the_field(field: str, value: Any) -> None:
    raw = yaml.safe_load((REPO / "pipelines" / "environments" / "staging.yaml").read_text())
    raw["promotion"][field] = value
    with pytest.raises(ConfigError) as error:
        validate_environment(raw, source="env.yaml")
    message = str(error.value)
    assert message.startswith(f"env.yaml: key 'promotion.{field}' = {value!r}: ")
    assert "\n" not in message


def test_unset_gates_validate() -> None:
    raw = yaml.safe_load((REPO / "pipelines" / "environments" / "staging.yaml").read_text())
    raw["promotion"].update(NO_GATES)
    config = validate_environment(raw, source="env.yaml")
    assert config.promotion.min_deflated_sharpe is None and config.promotion.min_grade == "B"
    raw["promotion"].update(max_drawdown=1, min_deflated_sharpe=0.5)  # 1: the whole equity
    assert validate_environment(raw, source="env.yaml").promotion.max_drawdown == 1.0
