"""kfp.local's output split per task: one log file per task under `<run>/logs/`, the rest in
`logs/kfp-local.log`, and `logs/events.jsonl`, which tells the console the pipeline's steps
and when each task started, succeeded or failed.

kfp.local (2.17) runs the pipeline in one process. It announces each task on its stdout with
a log record, streams the task's own output below it (indented), and closes it with another
record, the task's outputs and a horizontal rule:

    12:33:46.391 - INFO - Executing task 'prepare-data'
        [KFP Executor 2026-12-02 12:33:46,701 INFO]: Looking for component `prepare_data` ...
        ...
    12:33:57.107 - ERROR - Task 'prepare-data' finished with status FAILURE
    --------------------------------------------------------------------------------

The iterations of a ParallelFor share the task name and run in threads of that process, so a
line belongs to its thread's open task. The task's output paths name it and its iteration
(= its shard: `list_shards` lists them in order): `.../for-loop-2-iteration-1/tune-stage/Output`.
The records go through one logging context that the threads share, so a record of one thread
is lost when another thread's task ends at that moment; the parser does without them: the
executor's first line opens a task too, the rule closes it, and a task whose status record
is missing succeeded when its executor wrote its output file. A retried task opens again.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

LOGS_DIR = "logs"
EVENTS_FILE = "events.jsonl"
ORCHESTRATOR_LOG = "kfp-local.log"
TAIL_LINES = 20

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STAMP = r"^\d\d:\d\d:\d\d\.\d{3} - [A-Z]+ - "
_START = re.compile(_STAMP + r"Executing task '(?P<task>[^']+)'$")
_FINISH = re.compile(_STAMP + r"Task '(?P<task>[^']+)' finished with status (?P<status>\w+)$")
_EXECUTOR = re.compile(r"\[KFP Executor [^\]]*\]: Looking for component `(?P<function>\w+)`")
_OUTPUT_FILE = re.compile(r'"outputFile": "(?P<path>[^"]+)"')
_ITERATION = re.compile(r"-iteration-(?P<index>\d+)$")
_WROTE = "Wrote executor output file to "
_RULE = re.compile(r"^-{20,}$")
_MAX_PENDING = 400
"""Lines kept back while a task's name and shard are not known (its output paths come early)."""
STATES = {"SUCCESS": "succeeded", "FAILURE": "failed"}


@dataclass(frozen=True)
class Step:
    """One executable task of the pipeline: `key` is the name kfp.local prints (the component
    name without `comp-`), `label` its display name, `sharded` whether it runs per shard."""

    key: str
    label: str
    sharded: bool


@dataclass(frozen=True)
class TaskEvent:
    task: str
    shard: int | None
    state: str
    """`running`, `succeeded` or `failed` (a failed task may run again: kfp retries)."""
    time: float

    @property
    def log_name(self) -> str:
        return log_name(self.task, self.shard)


def log_name(task: str, shard: int | None) -> str:
    """`<task>.log`, or `<task>.<shard>.log` for the iteration of a loop."""
    return f"{task}.log" if shard is None else f"{task}.{shard}.log"


def pipeline_steps(spec: Any) -> list[Step]:
    """The executable tasks of a compiled `PipelineSpec`, in dependency order; the tasks inside
    a ParallelFor are sharded."""
    steps: list[Step] = []

    def walk(dag: Any, sharded: bool) -> None:
        for name in _dependency_order(dag.tasks):
            task = dag.tasks[name]
            component = spec.components[task.component_ref.name]
            if component.WhichOneof("implementation") == "dag":
                walk(component.dag, sharded or task.WhichOneof("iterator") is not None)
            else:
                key = task.component_ref.name.removeprefix("comp-")
                steps.append(Step(key, task.task_info.name or key, sharded))

    walk(spec.root.dag, False)
    return steps


def _dependency_order(tasks: Any) -> list[str]:
    """Task names, each after the tasks it depends on (ties by name)."""
    order: list[str] = []
    pending = sorted(tasks)
    while pending:
        ready = [n for n in pending if set(tasks[n].dependent_tasks) <= set(order)]
        order.append((ready or pending)[0])
        pending.remove(order[-1])
    return order


@dataclass
class _Open:
    task: str
    started: float
    shard: int | None = None
    resolved: bool = False
    wrote: bool = False
    """The executor wrote its output file: the task's function returned."""
    finished: bool = False
    pending: list[str] = field(default_factory=list)


Write = tuple[str | None, str]
"""(log file name, or None for the orchestrator's log; the line without colour codes)."""


class OutputParser:
    """Assigns each line of kfp.local's output (per thread) to a task and yields task events."""

    def __init__(self) -> None:
        self._open: dict[int, _Open] = {}

    def feed(self, thread: int, raw: str, now: float) -> tuple[list[Write], list[TaskEvent]]:
        line = ANSI.sub("", raw).rstrip("\r\n")
        writes: list[Write] = []
        events: list[TaskEvent] = []
        start = _START.match(line)
        executor = _EXECUTOR.search(line) if thread not in self._open else None
        if start is not None or executor is not None:
            self._close(thread, writes)
            name = start["task"] if start is not None else executor["function"]  # type: ignore[index]
            self._open[thread] = _Open(name.replace("_", "-"), now)
        current = self._open.get(thread)
        if current is None:
            return [(None, line)], []
        finish = _FINISH.match(line)
        if not current.resolved:
            output = _OUTPUT_FILE.search(line)
            if output:
                *_, parent, task, _ = output["path"].split("/")
                iteration = _ITERATION.search(parent)
                current.task = task
                current.shard = None if iteration is None else int(iteration["index"])
            if output or finish or len(current.pending) >= _MAX_PENDING:
                self._resolve(current, writes, events)
        current.wrote = current.wrote or _WROTE in line
        if finish and finish["task"] == current.task and not current.finished:
            current.finished = True
            state = STATES.get(finish["status"], "failed")
            events.append(TaskEvent(current.task, current.shard, state, now))
        if current.resolved:
            writes.append((log_name(current.task, current.shard), line))
        else:
            current.pending.append(line)
        if current.resolved and _RULE.match(line.strip()):
            if not current.finished:  # its status record was lost
                state = "succeeded" if current.wrote else "failed"
                events.append(TaskEvent(current.task, current.shard, state, now))
            del self._open[thread]
        return writes, events

    def close(self) -> list[Write]:
        """What is still held back when the output ends."""
        writes: list[Write] = []
        for thread in list(self._open):
            self._close(thread, writes)
        return writes

    def _resolve(self, current: _Open, writes: list[Write], events: list[TaskEvent]) -> None:
        current.resolved = True
        events.append(TaskEvent(current.task, current.shard, "running", current.started))
        writes += [(log_name(current.task, current.shard), line) for line in current.pending]
        current.pending.clear()

    def _close(self, thread: int, writes: list[Write]) -> None:
        current = self._open.pop(thread, None)
        if current is not None and not current.resolved:
            writes += [(log_name(current.task, current.shard), line) for line in current.pending]


class LogRouter:
    """Writes kfp.local's output to the logs folder (and to `echo`, when given, unchanged but
    for being passed on a whole line at a time per thread)."""

    def __init__(self, folder: Path, echo: TextIO | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._echo = echo
        self._parser = OutputParser()
        self._files: dict[str | None, TextIO] = {None: (folder / ORCHESTRATOR_LOG).open("a")}
        self._events = (folder / EVENTS_FILE).open("a")
        self._partial: dict[int, str] = {}
        self._lock = threading.Lock()

    def announce(self, steps: list[Step]) -> None:
        """The first record of the events file: the pipeline's steps."""
        self._record({"steps": [asdict(step) for step in steps]})

    def write(self, text: str) -> None:
        thread = threading.get_ident()
        with self._lock:
            *lines, rest = (self._partial.pop(thread, "") + text).split("\n")
            if rest:
                self._partial[thread] = rest
            if self._echo is not None and lines:
                # whole lines per thread: parallel tasks' fragments never mix on the console
                self._echo.write("".join(f"{line}\n" for line in lines))
                self._echo.flush()
            for line in lines:
                writes, events = self._parser.feed(thread, line, time.time())
                self._emit(writes)
                for event in events:
                    self._record(asdict(event))

    def close(self) -> None:
        with self._lock:
            now = time.time()
            for thread, rest in self._partial.items():
                if self._echo is not None:
                    self._echo.write(rest)
                    self._echo.flush()
                self._emit(self._parser.feed(thread, rest, now)[0])
            self._partial.clear()
            self._emit(self._parser.close())
            for handle in [*self._files.values(), self._events]:
                handle.close()

    def stream(self) -> TextIO:
        """A text stream for `sys.stdout` / `sys.stderr` that writes through this router."""
        return cast(TextIO, _RoutedStream(self))

    def _emit(self, writes: list[Write]) -> None:
        for name, line in writes:
            handle = self._files.get(name)
            if handle is None:
                handle = self._files[name] = (self.folder / str(name)).open("a")
            handle.write(line + "\n")
            handle.flush()

    def _record(self, record: dict[str, Any]) -> None:
        self._events.write(json.dumps(record) + "\n")
        self._events.flush()


class _RoutedStream(io.TextIOBase):
    encoding = "utf-8"

    def __init__(self, router: LogRouter) -> None:
        self._router = router

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._router.write(text)
        return len(text)


# ---------------------------------------------------------------- reading, for the console
def read_records(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete records of an events file from byte `offset`; the offset to go on from."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
    return records, offset + end


def failed_task_logs(run_dir: Path) -> list[tuple[str, Path]]:
    """`(task, log file)` of every task whose last event is a failure, in the order they failed."""
    records, _ = read_records(run_dir / LOGS_DIR / EVENTS_FILE)
    last: dict[tuple[str, int | None], dict[str, Any]] = {}
    for record in records:
        if "task" in record:
            key = (record["task"], record["shard"])
            last.pop(key, None)
            last[key] = record
    failed = [key for key, record in last.items() if record["state"] == "failed"]
    return [
        (
            task if shard is None else f"{task} (shard {shard})",
            run_dir / LOGS_DIR / log_name(task, shard),
        )
        for task, shard in failed
    ]


def log_tail(path: Path, count: int = TAIL_LINES) -> list[str]:
    """The last `count` lines of a task's own output (no blank lines, no kfp.local frame),
    without the indentation they share."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    own = [
        line
        for line in lines
        if line.strip() and not _RULE.match(line.strip()) and not _FINISH.match(line)
    ]
    return textwrap.dedent("\n".join(own[-count:])).splitlines()


__all__ = [
    "ANSI",
    "EVENTS_FILE",
    "LOGS_DIR",
    "ORCHESTRATOR_LOG",
    "LogRouter",
    "OutputParser",
    "Step",
    "TaskEvent",
    "failed_task_logs",
    "log_name",
    "log_tail",
    "pipeline_steps",
    "read_records",
]
