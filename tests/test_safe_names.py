"""Names that become paths or registry names follow one rule, checked when config or data load;
the run layout refuses any path part that could leave the run folder."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from alphafactory.cli import app
from alphafactory.config import load_environment, validate_environment
from alphafactory.config.loader import environment_path
from alphafactory.data.bars import load_bars, validate_bars
from alphafactory.errors import ConfigError, DataError
from alphafactory.layout import RunLayout
from alphafactory.names import SAFE_NAME_RULE, is_safe_name
from pipelines.local import COMPILED_DIR, compile_pipeline

#: Every name the probe tried: escapes, an absolute path, a separator, spaces, non-ASCII
#: (Greek and Cyrillic look-alikes of BTC), plus the feature separator '__', a bare '..' and
#: an index ticker.
UNSAFE = ["../../../../../ESC", "/abs", "a/b", "B T C", "ΒΤС", "BTC€", "A__B", "..", "^GSPC"]
SAFE = ["BTC", "ETH", "SOL", "BTC-USD", "BRK.B", "AAPL", "A_1", "x" * 64]
T0 = datetime(2024, 1, 1, tzinfo=UTC)
runner = CliRunner()


def _bars(symbol: str, n_bars: int = 3) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "timestamp": [T0 + timedelta(hours=i) for i in range(n_bars)],
            "symbol": [symbol] * n_bars,
            "open": [100.0] * n_bars,
            "high": [101.0] * n_bars,
            "low": [99.0] * n_bars,
            "close": [100.5] * n_bars,
            "volume": [1.0] * n_bars,
        }
    )


def _environment(**sections: Any) -> dict[str, Any]:
    return {"name": "names-test", **sections}


# ------------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("name", SAFE)
def test_ordinary_symbols_are_safe(name: str) -> None:
    assert is_safe_name(name)


@pytest.mark.parametrize("name", [*UNSAFE, "", "x" * 65, ".hidden", "-flag"])
def test_unsafe_names_are_refused(name: str) -> None:
    assert not is_safe_name(name)


# ------------------------------------------------------------------------------ in config


@pytest.mark.parametrize("name", UNSAFE)
def test_config_symbol_is_refused_in_one_line(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_environment(_environment(data={"symbols": ["BTC", name]}), source="env.yaml")
    assert str(caught.value) == (
        f"env.yaml: key 'data.symbols.1' = {name!r}: not a safe name; use {SAFE_NAME_RULE}"
    )


def test_planted_symbol_is_refused() -> None:
    raw = _environment(data={"planted": {"symbols": ["a/b"]}})
    with pytest.raises(ConfigError, match=r"key 'data\.planted\.symbols\.0' = 'a/b': not a safe"):
        validate_environment(raw, source="env.yaml")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ({"name": "../x"}, "name", "../x"),
        ({"promotion": {"overlay": "../../etc"}}, "promotion.overlay", "../../etc"),
        ({"promotion": {"promoted_from": "/abs"}}, "promotion.promoted_from", "/abs"),
    ],
)
def test_names_that_become_paths_are_refused(section: dict[str, Any], key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_environment({**_environment(), **section}, source="env.yaml")
    assert str(caught.value) == (
        f"env.yaml: key '{key}' = {value!r}: not a safe name; use {SAFE_NAME_RULE}"
    )


def test_environment_name_outside_the_environments_folder_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        environment_path("../x")
    assert str(caught.value) == (
        f"environment '../x' is neither a name nor a .yaml file; an environment name is "
        f"{SAFE_NAME_RULE}"
    )


def test_compiling_an_environment_named_to_escape_writes_nothing(tmp_path: Path) -> None:
    """`name` picks pipelines/compiled/<name>.yaml; a `../` name would land in tmp_path."""
    escape = os.path.relpath(tmp_path / "escaped", COMPILED_DIR)
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump({"name": escape}))
    with pytest.raises(ConfigError, match=r"key 'name' = '\.\./.*escaped': not a safe name"):
        compile_pipeline(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env.yaml"]


# -------------------------------------------------------------------------------- in data


@pytest.mark.parametrize("name", UNSAFE)
def test_data_symbol_is_refused_with_row_and_rule(name: str) -> None:
    frame = pl.concat([_bars("BTC"), _bars(name)])
    with pytest.raises(DataError) as caught:
        validate_bars(frame, "bars.csv")
    assert str(caught.value) == (
        f"bars.csv: column 'symbol' row 4 has value {name!r}, not a safe name (it becomes "
        f"file and model names); rename the symbol to {SAFE_NAME_RULE}"
    )


def test_loaded_file_with_an_escaping_symbol_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    _bars("../../../../../ESC").write_csv(path)
    with pytest.raises(DataError, match=r"bars\.csv: column 'symbol' line 2 has value '\.\./"):
        load_bars(str(path))


# ----------------------------------------------------------------------------- the layout


@pytest.mark.parametrize(
    ("part", "problem"),
    [
        ("../../../../../ESC_w3_high.parquet", "contains a path separator"),
        ("/abs_w3_high.parquet", "is an absolute path"),
        ("a/b_w3_high.zip", "contains a path separator"),
        ("..", "contains '..'"),
        ("a..b", "contains '..'"),
        ("a\\b", "contains a path separator"),
        ("", "is empty"),
    ],
)
def test_layout_refuses_parts_that_leave_the_run_folder(part: str, problem: str) -> None:
    layout = RunLayout("/runs/r1")
    with pytest.raises(DataError) as caught:
        layout.path("prepare", "targets", part)
    assert str(caught.value) == (
        f"run folder /runs/r1: path part {part!r} {problem}; every name in a run folder "
        f"(symbols, group ids) must be {SAFE_NAME_RULE}"
    )


def test_layout_refuses_group_ids_made_of_unsafe_symbols() -> None:
    layout = RunLayout("/runs/r1")
    for make in (layout.targets, layout.model, layout.backtest_bars, layout.backtest_trades):
        with pytest.raises(DataError, match="path part '../../../../../ESC_w3_high"):
            make("../../../../../ESC_w3_high")
    assert layout.model("BTC-USD_w3_high") == "/runs/r1/train/models/BTC-USD_w3_high.zip"


# --------------------------------------------------------------------------- the real CLI


def _tiny_env(tmp_path: Path, symbols: list[str]) -> Path:
    path = tmp_path / "tiny.yaml"
    settings = {"name": "tiny", "data": {"source": "synthetic", "symbols": symbols}}
    path.write_text(yaml.safe_dump(settings))
    return path


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_cli_run_refuses_an_escaping_symbol_in_the_data_before_anything_runs(
    tmp_path: Path,
) -> None:
    data = tmp_path / "bars.csv"
    pl.concat([_bars("BTC", 5), _bars("../../../../../ESC", 5)]).write_csv(data)
    env = _tiny_env(tmp_path, ["BTC"])
    # A run folder five levels down: `../../../../../ESC` from prepare/targets lands in a/b/c.
    runs = tmp_path / "a" / "b" / "c" / "d" / "runs"
    result = runner.invoke(
        app, ["run", "--env", str(env), "--data", str(data), "--runs-dir", str(runs)]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {data}: column 'symbol' line 7 has value '../../../../../ESC', not a safe name "
        f"(it becomes file and model names); rename the symbol to {SAFE_NAME_RULE}"
    ]
    assert _tree(tmp_path) == ["bars.csv", "tiny.yaml"]  # no run folder, no escaped file


def test_cli_run_refuses_an_unsafe_configured_symbol(tmp_path: Path) -> None:
    env = _tiny_env(tmp_path, ["BTC", "B T C"])
    # `--grid huge` is refused right after the config loads: the symbol must be refused first
    # (and were it not, the command stops there instead of running the pipeline).
    result = runner.invoke(
        app, ["run", "--env", str(env), "--grid", "huge", "--runs-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {env}: key 'data.symbols.1' = 'B T C': not a safe name; use {SAFE_NAME_RULE}"
    ]
    assert _tree(tmp_path) == ["tiny.yaml"]


def test_shipped_environments_follow_the_rule() -> None:
    for name in ("local-dev", "staging", "production"):
        config = load_environment(name, use_env_vars=False)
        assert all(is_safe_name(symbol) for symbol in config.data.symbols)
        assert is_safe_name(config.name)
