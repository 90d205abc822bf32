"""The console of `alphafactory run`: one line per pipeline step while kfp.local runs.

On a terminal it is a live view (rich): each step with a bar over its shards, filled further
by the groups the running shards finished (`alphafactory.progress`), its elapsed time and an
estimate of what is left, under a line for the whole run. Anywhere else (pipes, CI logs,
tests) it prints one plain line when a step finishes, and the failed steps at the end.
Everything comes from the run folder: the child's `logs/events.jsonl`, the plan and the
progress files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
)

from alphafactory.progress import Progress as ShardProgress
from alphafactory.progress import read_progress
from pipelines.tasklogs import EVENTS_FILE, LOGS_DIR, Step, read_records

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
GLYPHS = {PENDING: "[dim]·[/]", RUNNING: "[cyan]▶[/]", DONE: "[green]✓[/]", FAILED: "[red]✗[/]"}


@dataclass
class StepState:
    step: Step
    states: dict[int | None, str] = field(default_factory=dict)
    """The last state of each shard (None for a task that is not sharded)."""
    starts: dict[int | None, float] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None


class RunState:
    """What the events, the plan and the progress files say about each step."""

    def __init__(self) -> None:
        self.steps: list[StepState] = []
        self.shards: int | None = None
        self.progress: dict[int, ShardProgress] = {}
        self._by_key: dict[str, StepState] = {}

    def apply(self, record: dict[str, Any]) -> None:
        if "steps" in record:
            self.steps = [StepState(Step(**step)) for step in record["steps"]]
            self._by_key = {state.step.key: state for state in self.steps}
            return
        step = self._by_key.get(record.get("task", ""))
        if step is None:
            return
        shard, state, at = record["shard"], record["state"], float(record["time"])
        step.states[shard] = state
        if state == "running":
            step.starts[shard] = at
            step.started = at if step.started is None else min(step.started, at)
        else:
            step.ended = at

    def total(self, index: int) -> int | None:
        return self.shards if self.steps[index].step.sharded else 1

    def status(self, index: int) -> str:
        step = self.steps[index]
        states = list(step.states.values())
        if not states:
            return PENDING
        if RUNNING in states:
            return RUNNING
        if FAILED in states:
            return FAILED
        total = self.total(index)
        if total is not None and states.count("succeeded") >= total:
            return DONE
        later_started = any(later.states for later in self.steps[index + 1 :])
        return DONE if total is None and later_started else RUNNING

    def running_progress(self, index: int) -> list[ShardProgress]:
        """The progress records of the step's running shards, written since they started."""
        step = self.steps[index]
        found = []
        for shard, state in step.states.items():
            record = self.progress.get(shard) if shard is not None else None
            if state == RUNNING and record is not None and record.time >= step.starts[shard]:
                found.append(record)
        return found

    def completed(self, index: int) -> float:
        """Shards done, counting the running ones' share of their groups."""
        if self.status(index) == DONE:
            return float(self.total(index) or len(self.steps[index].states))
        succeeded = list(self.steps[index].states.values()).count("succeeded")
        return succeeded + sum(p.fraction for p in self.running_progress(index))

    def detail(self, index: int) -> str:
        step = self.steps[index]
        if not step.step.sharded:
            return ""
        total = self.total(index)
        succeeded = list(step.states.values()).count("succeeded")
        text = f"{succeeded}/{total if total is not None else '?'} shards"
        running = self.running_progress(index)
        if running and self.status(index) == RUNNING:
            done, planned = sum(p.done for p in running), sum(p.total for p in running)
            text += f", {running[0].unit} {done}/{planned}"
        return text

    def left(self, index: int, now: float) -> float | None:
        """What a running step has left if it goes on at its pace so far (None: no pace yet)."""
        total = self.total(index)
        if self.status(index) != RUNNING or not total:
            return None
        share = self.completed(index) / total
        return self.elapsed(index, now) * (1 - share) / share if 0 < share < 1 else None

    def elapsed(self, index: int, now: float) -> float:
        step = self.steps[index]
        if step.started is None:
            return 0.0
        end = step.ended if step.ended is not None and self.status(index) in (DONE, FAILED) else now
        return max(0.0, end - step.started)


def clock(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from an hour on."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RunView:
    """Follows a run folder while kfp.local runs in it (see the module docstring)."""

    def __init__(self, console: Console, *, live: bool | None = None) -> None:
        self.console = console
        self.state = RunState()
        self.live = console.is_terminal and not console.is_dumb_terminal if live is None else live
        self._offset = 0
        self._printed: set[int] = set()
        self._progress: Progress | None = None
        self._ids: list[TaskID] = []
        self._overall: TaskID | None = None
        self._begun = time.time()

    def __enter__(self) -> RunView:
        self._begun = time.time()
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=28),
                TextColumn("{task.fields[detail]}"),
                TextColumn("{task.fields[clock]}"),
                TextColumn("{task.fields[left]}"),
                console=self.console,
            )
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, run_dir: Path, final: bool = False) -> None:
        """Read what is new in `run_dir` and show it; `final` once the pipeline process ended."""
        records, self._offset = read_records(run_dir / LOGS_DIR / EVENTS_FILE, self._offset)
        for record in records:
            self.state.apply(record)
        if self.state.shards is None:
            self.state.shards = _shard_count(run_dir)
        self.state.progress = read_progress(run_dir)
        if self._progress is not None:
            self._render(self._progress)
        else:
            self._print_finished(final)

    def _print_finished(self, final: bool) -> None:
        now, count = time.time(), len(self.state.steps)
        for index, step in enumerate(self.state.steps):
            status = self.state.status(index)
            if index in self._printed or not (status == DONE or (final and status == FAILED)):
                continue
            self._printed.add(index)
            detail = self.state.detail(index)
            word = "done" if status == DONE else "FAILED"
            parts = [step.step.label, *([detail] if detail else []), word]
            parts.append(clock(self.state.elapsed(index, now)))
            line = f"[{index + 1:>{len(str(count))}}/{count}] " + " · ".join(parts)
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def _render(self, progress: Progress) -> None:
        state, now = self.state, time.time()
        count = len(state.steps)
        if not self._ids and count:
            self._overall = progress.add_task("run", total=count, detail="", clock="", left="")
            for step in state.steps:
                self._ids.append(
                    progress.add_task(step.step.label, total=1, detail="", clock="", left="")
                )
        for index, task_id in enumerate(self._ids):
            status = state.status(index)
            left = state.left(index, now)
            progress.update(
                task_id,
                description=f"{GLYPHS[status]} {escape(state.steps[index].step.label)}",
                total=float(state.total(index) or max(1, len(state.steps[index].states))),
                completed=state.completed(index),
                detail=state.detail(index),
                clock="" if status == PENDING else clock(state.elapsed(index, now)),
                left="" if left is None else f"~{clock(left)} left",
            )
        if self._overall is not None:
            finished = sum(state.status(i) == DONE for i in range(count))
            fractions = [state.completed(i) / (state.total(i) or 1) for i in range(count)]
            progress.update(
                self._overall,
                description=f"[bold]run[/] · step {min(finished + 1, count)} of {count}",
                completed=sum(min(1.0, f) for f in fractions),
                clock=clock(now - self._begun),
            )


def _shard_count(run_dir: Path) -> int | None:
    """The number of shards in the run's plan, once prepare wrote it."""
    from alphafactory.errors import AlphaFactoryError
    from alphafactory.layout import RunLayout, read_plan

    layout = RunLayout(str(run_dir))
    if not Path(layout.plan).is_file():
        return None
    try:
        return len(read_plan(layout).shards)
    except (OSError, ValueError, AlphaFactoryError):
        return None


__all__ = ["RunState", "RunView", "clock"]
