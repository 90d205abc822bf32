"""Live inference under stress: concurrent runs, killed runs, short histories, file modes and
object stores."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest
from tiny_run import TINY_BARS, TinyRuns, clone_runs, tiny_bars

from alphafactory import io
from alphafactory.data.bars import write_bars
from alphafactory.errors import DataError
from alphafactory.registry import ModelRegistry
from alphafactory.stages.live import (
    Generation,
    live_predictions_path,
    run_live,
    warmup_bars,
)

GROUPS = 4
"""The planted symbol's four groups have champions (see tests/test_live.py)."""
FIRST_BARS = 50


@pytest.fixture
def runs(tiny_runs: TinyRuns, tmp_path: Path) -> TinyRuns:
    return clone_runs(tiny_runs, tmp_path)


def _registry(runs: TinyRuns) -> ModelRegistry:
    return ModelRegistry(root=runs.runs_dir / "registry")


def _live_file(runs: TinyRuns) -> Path:
    return Path(live_predictions_path(str(runs.runs_dir)))


def _bars_file(folder: Path, bars: pl.DataFrame, name: str) -> str:
    uri = str(folder / f"{name}.parquet")
    write_bars(bars, uri)
    return uri


def _cli(env: Path, data: str, first_bars: int = FIRST_BARS) -> list[str]:
    command = ["infer", "--live", "--env", str(env), "--data", data]
    runner = "from alphafactory.cli import main; main()"
    return [sys.executable, "-c", runner, *command, "--first-bars", str(first_bars)]


PAUSED_RUN = """
import sys, time
from pathlib import Path
from alphafactory.cli import main
from alphafactory.stages import live

# pause after the live file was read, until the test says go: the worst interleaving
predict, paused = live.predict_new_bars, []
has_read, go = Path(sys.argv[1]), Path(sys.argv[2])

def predict_after_pause(*args, **kwargs):
    if not paused:
        paused.append(True)
        has_read.touch()
        deadline = time.monotonic() + 300
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return predict(*args, **kwargs)

live.predict_new_bars = predict_after_pause
sys.argv = ["alphafactory", *sys.argv[3:]]
main()
"""


def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, f"the run exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_two_racing_live_runs_lose_no_update(runs: TinyRuns, tmp_path: Path) -> None:
    """Run B (5 new bars) reads the live file and pauses; run A (10 new bars) then starts and
    would, without a lock, write its rows and exit; B, resumed, would write the file it read
    plus its own rows and drop A's newest bars. With the lock A waits for B and adds to B's
    file: both updates are present."""
    env = runs.write_env(tmp_path)
    longer = _bars_file(tmp_path, tiny_bars(TINY_BARS + 10), "longer")
    shorter = _bars_file(tmp_path, tiny_bars(TINY_BARS + 5), "shorter")
    script, has_read, go = tmp_path / "paused.py", tmp_path / "b-read", tmp_path / "go"
    script.write_text(PAUSED_RUN)
    command_b = [sys.executable, str(script), str(has_read), str(go), *_cli(env, shorter)[3:]]
    # output to files, not pipes: a full pipe nobody reads would stall the paused run
    logs = [tmp_path / "b.log", tmp_path / "a.log"]
    with logs[0].open("wb") as log_b, logs[1].open("wb") as log_a:
        run_b = subprocess.Popen(command_b, stdout=log_b, stderr=subprocess.STDOUT)
        _wait_for(has_read, run_b, timeout_s=300)
        run_a = subprocess.Popen(_cli(env, longer), stdout=log_a, stderr=subprocess.STDOUT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run_a.wait(timeout=60)  # unlocked, A finishes in this time; locked, it waits for B
        go.touch()
        codes = [run_b.wait(timeout=300), run_a.wait(timeout=300)]
    assert codes == [0, 0], [log.read_text()[-3000:] for log in logs]
    frame = pl.read_parquet(_live_file(runs))
    assert frame.select("timestamp", "group_id").is_unique().all()
    newest = tiny_bars(TINY_BARS + 10)["timestamp"].max()
    latest = frame.group_by("group_id").agg(pl.col("timestamp").max())["timestamp"].to_list()
    assert latest == [newest] * GROUPS
    # B's FIRST_BARS bars, then A's 5 newer ones
    assert frame.height == (FIRST_BARS + 5) * GROUPS
    assert sorted(p.name for p in _live_file(runs).parent.iterdir()) == ["predictions.parquet"]


def test_a_held_lock_refuses_with_one_line(runs: TinyRuns) -> None:
    live_file = _live_file(runs)
    live_file.parent.mkdir(parents=True)
    lock = live_file.with_name("predictions.parquet.lock")
    with lock.open("w") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        with pytest.raises(DataError) as raised:
            run_live(runs.config, str(runs.runs_dir), _registry(runs), lock_timeout_s=0.3)
    assert str(raised.value) == (
        f"another live run holds {lock} (waited 0.3 s): wait for it to finish and re-run "
        "`infer --live`"
    )
    assert not live_file.exists()


def test_a_killed_run_leaves_a_temporary_that_the_next_run_removes(
    runs: TinyRuns, tmp_path: Path
) -> None:
    script = tmp_path / "killed.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal, sys
            from alphafactory.config import load_environment
            from alphafactory.registry import ModelRegistry
            from alphafactory.stages import live

            # killed between writing the temporary and moving it in place
            live._commit = lambda temporary, target: os.kill(os.getpid(), signal.SIGKILL)
            config = load_environment(sys.argv[1])
            registry = ModelRegistry(root=sys.argv[2] + "/registry")
            live.run_live(config, sys.argv[2], registry, first_bars=5)
            """
        )
    )
    env = runs.write_env(tmp_path)
    killed = subprocess.run(
        [sys.executable, str(script), str(env), str(runs.runs_dir)], capture_output=True
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    folder = _live_file(runs).parent
    left = sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
    assert len(left) == 1 and left[0].startswith(".predictions.parquet.")
    result = run_live(runs.config, str(runs.runs_dir), _registry(runs), first_bars=5)
    assert result.added == 5 * GROUPS
    assert sorted(p.name for p in folder.iterdir()) == ["predictions.parquet"]


def test_short_history_predicts_no_warm_up_bar_and_freezes_nothing(
    runs: TinyRuns, tmp_path: Path
) -> None:
    """30 bars are fewer than the features' warm-up: nothing is predicted or remembered, and
    a later run with the full history predicts those very bars."""
    full = tiny_bars()
    last_30 = full.group_by("symbol", maintain_order=True).tail(30)
    registry = _registry(runs)
    short = run_live(
        runs.config, str(runs.runs_dir), registry, data=_bars_file(tmp_path, last_30, "short")
    )
    assert short.added == 0 and short.rows_total == 0
    assert not _live_file(runs).exists()
    later = run_live(runs.config, str(runs.runs_dir), registry, first_bars=FIRST_BARS)
    assert later.added == FIRST_BARS * GROUPS
    predicted = set(pl.read_parquet(_live_file(runs))["timestamp"].to_list())
    assert set(last_30["timestamp"].to_list()) <= predicted


def test_only_bars_with_full_warm_up_are_predicted(runs: TinyRuns, tmp_path: Path) -> None:
    warmup = warmup_bars(runs.config.features.scale)
    assert warmup == 200  # twice the small scale's longest window (100 bars)
    recent = tiny_bars().group_by("symbol", maintain_order=True).tail(warmup + 12)
    result = run_live(
        runs.config,
        str(runs.runs_dir),
        _registry(runs),
        data=_bars_file(tmp_path, recent, "recent"),
        first_bars=500,
    )
    assert result.rows_added == dict.fromkeys(result.models, 12)
    frame = pl.read_parquet(_live_file(runs))
    expected = sorted(recent["timestamp"].unique().sort().tail(12).to_list())
    assert sorted(frame["timestamp"].unique().to_list()) == expected


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_live_file_mode_follows_the_umask(runs: TinyRuns, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        run_live(runs.config, str(runs.runs_dir), _registry(runs), first_bars=3)
    finally:
        os.umask(previous)
    assert _live_file(runs).stat().st_mode & 0o777 == mode


def test_object_store_write_is_refused_when_another_run_changed_the_file() -> None:
    path = "memory://live-hardening/live/predictions.parquet"
    io.write_parquet(path, pl.DataFrame({"a": [1]}))
    seen = Generation(path)
    seen.check_unchanged()  # nobody wrote since: the write may go ahead
    io.write_parquet(path, pl.DataFrame({"a": [1, 2]}))
    with pytest.raises(DataError, match=r"^memory://live-hardening/live/predictions\.parquet "):
        seen.check_unchanged()
    with pytest.raises(DataError, match=r"nothing was written: re-run `infer --live`$"):
        seen.check_unchanged()


def test_live_run_on_an_object_store_appends(runs: TinyRuns) -> None:
    runs_dir = "memory://live-hardening-run"
    registry = _registry(runs)
    first = run_live(runs.config, runs_dir, registry, first_bars=4)
    assert first.added == 4 * GROUPS
    assert io.read_parquet(live_predictions_path(runs_dir)).height == 4 * GROUPS
    assert run_live(runs.config, runs_dir, registry, first_bars=4).added == 0
