"""How far a shard task is through its loop: one tiny file per shard in the run folder.

Stages wrap the loop over a shard's groups (or units) in `tracked(...)`; each step writes
`<run_dir>/progress/shard-<k>.json` (`{"done", "total", "unit", "time"}`), which the console of
`alphafactory run` reads to fill the bar of the running step. Only local run folders get the
file: on a cluster nobody watches it, and an object store would pay a write per group.
A shard runs one task at a time, so the file always describes the shard's current task.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

PROGRESS_DIR = "progress"


@dataclass(frozen=True)
class Progress:
    """One shard's position in its current task's loop, written at wall-clock `time`."""

    done: int
    total: int
    unit: str
    time: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


def _is_local(run_dir: str) -> bool:
    return "://" not in run_dir


def progress_file(run_dir: str | Path, shard: int) -> Path:
    return Path(run_dir) / PROGRESS_DIR / f"shard-{shard}.json"


def report(run_dir: str, shard: int, done: int, total: int, unit: str = "groups") -> None:
    """Record that shard `shard` finished `done` of its `total` loop items (atomically)."""
    if not _is_local(run_dir):
        return
    target = progress_file(run_dir, shard)
    target.parent.mkdir(parents=True, exist_ok=True)
    record = {"done": done, "total": total, "unit": unit, "time": time.time()}
    temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(record))
    os.replace(temporary, target)


def tracked(
    items: Iterable[T], run_dir: str, shard: int, total: int | None = None, unit: str = "groups"
) -> Iterator[T]:
    """`items`, reporting 0 of `total` first and one more each time the loop asks for the
    next item (the previous one is then done). `total` defaults to `len(items)`."""
    if total is None:
        if not isinstance(items, Sized):
            raise TypeError("tracked() needs total= for items without a length")
        total = len(items)
    report(run_dir, shard, 0, total, unit)
    for done, item in enumerate(items, start=1):
        yield item
        report(run_dir, shard, done, total, unit)


def read_progress(run_dir: str | Path) -> dict[int, Progress]:
    """The latest record of every shard of a local run folder (unreadable files skipped)."""
    folder = Path(run_dir) / PROGRESS_DIR
    found: dict[int, Progress] = {}
    for path in folder.glob("shard-*.json") if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            shard = int(path.stem.removeprefix("shard-"))
            found[shard] = Progress(
                int(record["done"]),
                int(record["total"]),
                str(record["unit"]),
                float(record["time"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


__all__ = ["PROGRESS_DIR", "Progress", "progress_file", "read_progress", "report", "tracked"]
