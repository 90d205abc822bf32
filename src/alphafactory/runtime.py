"""Helpers for the thin KFP component bodies (no kfp import: they take duck-typed artifacts)."""

from __future__ import annotations

import logging
import math
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from alphafactory import io
from alphafactory.config.loader import validate_environment
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.layout import RunLayout


class MetricsSink(Protocol):
    def log_metric(self, metric: str, value: float) -> None: ...


def setup_logging() -> None:
    """Structured one-line logs on stderr, as the components' progress."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


@contextmanager
def task_failures(run_dir: str, task: str) -> Iterator[None]:
    """Run a component body; if it raises, keep its traceback in `<run_dir>/errors/<task>.txt`.

    kfp.local deletes its workspace and cluster logs scroll away: the run folder keeps the
    reason, and `alphafactory run` prints its last line. The original exception propagates.
    """
    try:
        yield
    except BaseException:
        try:
            io.write_text(RunLayout(run_dir).task_error(task), traceback.format_exc())
        except Exception:  # never mask the task's own error with a failure to record it
            logging.getLogger(__name__).exception("could not record the failure of %s", task)
        raise


def config_from_json(config_json: str) -> EnvironmentConfig:
    """The environment a pipeline run was compiled or submitted with."""
    import json

    return validate_environment(json.loads(config_json), source="pipeline parameter config_json")


def resolve_run_dir(run_dir: str, run_root: str, job_id: str) -> str:
    """The explicit run folder, or `<run_root>/<job id>` for cluster runs."""
    if run_dir:
        return run_dir
    if not run_root:
        raise ValueError("either run_dir or run_root must be given")
    return io.join(run_root, job_id)


def log_metrics(sink: MetricsSink, metrics: Mapping[str, Any]) -> None:
    """Log every finite number of `metrics` to a KFP Metrics artifact."""
    for key, value in metrics.items():
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int | float) and math.isfinite(value):
            sink.log_metric(key, float(value))
