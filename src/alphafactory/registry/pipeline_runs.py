"""A pipeline run as MLflow shows runs: one parent run per pipeline run, named by its run id,
with a child run per stage holding the stage's metrics (tuning trials as metric series,
step = trial number) and the model registration runs nested under it too.

The publish step builds it once per pipeline run from what the run folder records
(`alphafactory.stages.run_record`), so no other task needs MLflow. A parent left unfinished
by a crash is replaced on the next publish; a finished one is kept as it is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alphafactory.registry.mlflow_support import quoted
from alphafactory.registry.records import MANAGED_BY, TAG_MANAGED_BY, TAG_PIPELINE_RUN

if TYPE_CHECKING:
    from mlflow.entities import Metric, Run
    from mlflow.tracking import MlflowClient

TAG_KIND = "kind"
KIND_PIPELINE = "pipeline"
KIND_STAGE = "stage"
TAG_STAGE = "stage"
PARENT_TAG = "mlflow.parentRunId"
"""The tag MLflow nests a run under its parent by."""
FINISHED = "FINISHED"
_MAX_METRICS_PER_BATCH = 1000


@dataclass(frozen=True)
class StageRecord:
    """One stage of a pipeline run: its metrics and its metric series (key -> (step, value))."""

    name: str
    metrics: Mapping[str, float]
    series: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)


def find_pipeline_run(client: MlflowClient, experiment_id: str, pipeline_run_id: str) -> Run | None:
    """The parent run of pipeline run `pipeline_run_id`, or None."""
    found = client.search_runs(
        [experiment_id],
        f"tags.{TAG_KIND} = '{KIND_PIPELINE}' AND "
        f"tags.{TAG_PIPELINE_RUN} = {quoted('pipeline run id', pipeline_run_id)}",
    )
    return found[0] if found else None


def stage_runs(client: MlflowClient, experiment_id: str, parent_id: str) -> list[Run]:
    """The stage runs under a parent run, in the order they were logged."""
    found = client.search_runs(
        [experiment_id],
        f"tags.`{PARENT_TAG}` = '{parent_id}' AND tags.{TAG_KIND} = '{KIND_STAGE}'",
        order_by=["attributes.start_time ASC"],
    )
    return list(found)


def log_pipeline_run(
    client: MlflowClient,
    experiment_id: str,
    pipeline_run_id: str,
    stages: Sequence[StageRecord],
    *,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    children: Sequence[str] = (),
) -> str:
    """Log (once) the parent run of a pipeline run and its stage runs; nest the runs
    `children` (model registrations) under it. Returns the parent's run id."""
    existing = find_pipeline_run(client, experiment_id, pipeline_run_id)
    if existing is not None and existing.info.status == FINISHED:
        parent_id = str(existing.info.run_id)
    else:
        if existing is not None:  # a publish that crashed half-way: start again
            for stage in stage_runs(client, experiment_id, existing.info.run_id):
                client.delete_run(stage.info.run_id)
            client.delete_run(existing.info.run_id)
        parent_id = _log_parent(client, experiment_id, pipeline_run_id, stages, params, metrics)
    for child in children:
        client.set_tag(child, PARENT_TAG, parent_id)
    return parent_id


def _log_parent(
    client: MlflowClient,
    experiment_id: str,
    pipeline_run_id: str,
    stages: Sequence[StageRecord],
    params: Mapping[str, str],
    metrics: Mapping[str, float],
) -> str:
    from mlflow.entities import Param

    common = {TAG_MANAGED_BY: MANAGED_BY, TAG_PIPELINE_RUN: pipeline_run_id}
    started = int(time.time() * 1000)
    parent = client.create_run(
        experiment_id,
        run_name=pipeline_run_id,
        start_time=started,
        tags={**common, TAG_KIND: KIND_PIPELINE},
    )
    parent_id = str(parent.info.run_id)
    try:
        client.log_batch(parent_id, params=[Param(k, str(v)) for k, v in params.items()])
        _log_metrics(client, parent_id, metrics, {})
        for position, stage in enumerate(stages, start=1):
            tags = {**common, TAG_KIND: KIND_STAGE, TAG_STAGE: stage.name, PARENT_TAG: parent_id}
            # one millisecond apart: the stage runs sort in pipeline order by start time
            child = client.create_run(
                experiment_id, run_name=stage.name, start_time=started + position, tags=tags
            )
            _log_metrics(client, child.info.run_id, stage.metrics, stage.series)
            client.set_terminated(child.info.run_id)
    except Exception:
        client.set_terminated(parent_id, "FAILED")
        raise
    client.set_terminated(parent_id)
    return parent_id


def _log_metrics(
    client: MlflowClient,
    run_id: str,
    metrics: Mapping[str, float],
    series: Mapping[str, Sequence[tuple[int, float]]],
) -> None:
    from mlflow.entities import Metric

    now_ms = int(time.time() * 1000)
    rows: list[Metric] = [Metric(k, float(v), now_ms, 0) for k, v in metrics.items()]
    rows += [
        Metric(key, float(value), now_ms, int(step))
        for key, points in series.items()
        for step, value in points
    ]
    for start in range(0, len(rows), _MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=rows[start : start + _MAX_METRICS_PER_BATCH])
