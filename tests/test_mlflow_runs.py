"""The pipeline run in MLflow: one parent run per pipeline run, a child run per stage holding
the metrics that stage reported, tuning trials as metric series (step = trial number) and
the registration runs nested under the parent; built at publish time from the run folder."""

from __future__ import annotations

import shutil
from typing import Any

import optuna
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalFileBackend, JournalStorage
from tiny_run import TinyRuns, clone_runs

from alphafactory.layout import RunLayout, read_plan
from alphafactory.registry import ModelRegistry
from alphafactory.registry.pipeline_runs import (
    KIND_PIPELINE,
    KIND_STAGE,
    PARENT_TAG,
    TAG_KIND,
    StageRecord,
    find_pipeline_run,
    stage_runs,
)
from alphafactory.registry.records import TAG_PIPELINE_RUN
from alphafactory.stages import run_search_shard, run_select_search
from alphafactory.stages.run_record import TRIAL_SERIES, stage_records

TINY_STAGES = ["prepare", "screen", "tune 1", "train", "backtest", "infer"]


@pytest.fixture(scope="module")
def runs(tiny_runs: TinyRuns, tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    return clone_runs(tiny_runs, tmp_path_factory.mktemp("mlflow-runs"))


def _client(runs: TinyRuns) -> tuple[MlflowClient, str]:
    uri = f"sqlite:///{runs.runs_dir / 'registry' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("alphafactory")
    assert experiment is not None
    return client, str(experiment.experiment_id)


def _parents(client: MlflowClient, experiment: str, name: str) -> list[Run]:
    """The parent runs named `name` (a pipeline run id)."""
    found = client.search_runs([experiment], f"tags.{TAG_KIND} = '{KIND_PIPELINE}'")
    return [run for run in found if run.info.run_name == name]


def _stages(runs: TinyRuns, pipeline_run: str) -> dict[str, Run]:
    client, experiment = _client(runs)
    parent = find_pipeline_run(client, experiment, pipeline_run)
    assert parent is not None
    return {run.info.run_name: run for run in stage_runs(client, experiment, parent.info.run_id)}


def _summed(shards: list[dict[str, Any]], key: str) -> int:
    assert len(shards) == 2
    return sum(int(shard[key]) for shard in shards)


def test_one_parent_run_per_pipeline_run_with_a_child_per_stage(runs: TinyRuns) -> None:
    client, experiment = _client(runs)
    [parent] = _parents(client, experiment, "run-1")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[TAG_PIPELINE_RUN] == "run-1"
    assert parent.data.params["data_hash"] == runs.plan["data_hash"]
    children = stage_runs(client, experiment, parent.info.run_id)
    assert [run.info.run_name for run in children] == TINY_STAGES  # no tune 2-4 in a tiny run
    assert all(run.data.tags[TAG_KIND] == KIND_STAGE for run in children)
    assert all(run.info.status == "FINISHED" for run in children)
    # the eight registration runs are nested under the pipeline run too
    models = ModelRegistry(root=runs.runs_dir / "registry").list_models()
    assert len(models) == 8
    for model in models:
        assert client.get_run(model.run_id).data.tags[PARENT_TAG] == parent.info.run_id


def test_stage_runs_hold_the_metrics_the_stages_reported(runs: TinyRuns) -> None:
    reported = runs.stage_metrics
    logged = {name: run.data.metrics for name, run in _stages(runs, "run-1").items()}
    assert logged["prepare"] == reported["prepare"]
    assert logged["screen"] == {
        "variants_screened": _summed(reported["screen"], "variants_screened"),
        "variants_skipped": _summed(reported["screen"], "variants_skipped"),
        "features_selected": reported["aggregate"]["features_selected"],
    }
    assert logged["screen"]["variants_screened"] == reported["aggregate"]["variants_ranked"]
    tune = logged["tune 1"]
    assert {key: tune[key] for key in reported["winners"]} == reported["winners"]
    assert tune["variants_fitted"] == _summed(reported["tune"], "variants_fitted")
    assert tune["variants_skipped"] == _summed(reported["tune"], "variants_skipped")
    registry = ModelRegistry(root=runs.runs_dir / "registry")
    test_aps = {m.group: registry.info(m.model_id).metrics["ap"] for m in registry.list_models()}
    train = logged["train"]
    assert train["models_trained"] == _summed(reported["train"], "models_trained") == 8
    assert {key.split("/")[1]: v for key, v in train.items() if key.startswith("test_ap/")} == (
        test_aps
    )
    shard_means = [(s["mean_test_ap"], s["models_trained"]) for s in reported["train"]]
    weighted = sum(mean * n for mean, n in shard_means) / sum(n for _, n in shard_means)
    assert train["mean_test_ap"] == pytest.approx(weighted, rel=1e-12)
    assert train["cache_hits"] == 0  # the template run trained every model
    backtest = logged["backtest"]
    assert {key: backtest[key] for key in reported["backtest_all"]} == reported["backtest_all"]
    assert backtest["groups_backtested"] == 8
    assert logged["infer"] == reported["infer"]
    client, experiment = _client(runs)
    [parent] = _parents(client, experiment, "run-1")
    assert parent.data.metrics == reported["infer"]


def test_tuning_trials_are_metric_series_stepped_by_trial_number(runs: TinyRuns) -> None:
    """Stage 2 searched on a copy of the run (`run-2`): its child run has the fan-in's
    metrics and one series per study, equal to the trials in the study's own journal."""
    second = runs.runs_dir / "run-2"
    shutil.copytree(runs.run_dir, second)
    config, folder = runs.config, str(second)
    for shard in range(len(runs.plan["shards"])):
        run_search_shard(config, folder, shard, 2)
    reported = run_select_search(config, folder, 2)
    layout = RunLayout(folder)
    registry = ModelRegistry(root=runs.runs_dir / "registry")
    records = stage_records(config, layout, read_plan(layout), {"models": 8.0})
    assert [r.name for r in records] == [*TINY_STAGES[:3], "tune 2", *TINY_STAGES[3:]]
    parent_id = registry.log_pipeline_run("run-2", records, params={}, metrics={})

    client, experiment = _client(runs)
    tune = _stages(runs, "run-2")["tune 2"]
    assert {k: v for k, v in tune.data.metrics.items() if "/" not in k} == reported
    journals = sorted((second / "tune" / "stage2" / "studies").glob("*.journal"))
    assert [p.stem for p in journals] == ["stage2-w10", "stage2-w3"]
    for journal in journals:
        study = optuna.load_study(
            study_name=journal.stem, storage=JournalStorage(JournalFileBackend(str(journal)))
        )
        finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(finished) >= 10
        unit = journal.stem.removeprefix("stage2-")
        history = client.get_metric_history(tune.info.run_id, f"{TRIAL_SERIES}/{unit}")
        assert sorted((m.step, m.value) for m in history) == [(t.number, t.value) for t in finished]
        assert tune.data.metrics[f"{TRIAL_SERIES}/{unit}"] == finished[-1].value

    # publishing run-2 again logs nothing new: one parent, the same stage runs
    again = registry.log_pipeline_run("run-2", records, params={}, metrics={})
    assert again == parent_id
    assert len(_parents(client, experiment, "run-2")) == 1
    assert len(_stages(runs, "run-2")) == len(records)


def test_a_parent_left_unfinished_by_a_crash_is_replaced(runs: TinyRuns) -> None:
    client, experiment = _client(runs)
    tags = {TAG_KIND: KIND_PIPELINE, TAG_PIPELINE_RUN: "run-3"}
    crashed = client.create_run(experiment, run_name="run-3", tags=tags)  # never terminated
    client.create_run(
        experiment,
        run_name="prepare",
        tags={TAG_KIND: KIND_STAGE, PARENT_TAG: crashed.info.run_id},
    )
    registry = ModelRegistry(root=runs.runs_dir / "registry")
    records = [StageRecord("prepare", {"rows": 7.0}), StageRecord("infer", {"models": 1.0})]
    parent_id = registry.log_pipeline_run("run-3", records, params={}, metrics={})
    assert parent_id != crashed.info.run_id
    assert client.get_run(crashed.info.run_id).info.lifecycle_stage == "deleted"
    [parent] = _parents(client, experiment, "run-3")
    assert parent.info.run_id == parent_id and parent.info.status == "FINISHED"
    stages = _stages(runs, "run-3")
    assert list(stages) == ["prepare", "infer"]
    assert stages["prepare"].data.metrics == {"rows": 7.0}
