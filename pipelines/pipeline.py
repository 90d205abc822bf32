"""The alphafactory pipeline: prepare → screen → tune stage 1 → train → infer, sharded fan-out."""

from collections.abc import Callable
from typing import Any

from kfp import dsl

from components.infer_predictions import infer_predictions
from components.prepare_data import list_shards, prepare_data, resolve_run_dir
from components.screen_features import aggregate_screen, screen_shard
from components.train_models import train_shard
from components.tune_stage import select_winners, tune_stage

PIPELINE_NAME = "alphafactory"


def build_pipeline(config_json: str, parallelism: int = 2) -> Callable[..., Any]:
    """The pipeline with this environment's settings as the `config_json` default."""

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Mass-produce trading-signal models: prepare, screen, tune, train, infer.",
    )
    def alphafactory_pipeline(
        config_json: str = config_json, run_dir: str = "", run_root: str = ""
    ) -> None:
        resolved = resolve_run_dir(
            run_dir=run_dir, run_root=run_root, job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER
        ).set_display_name("resolve run folder")
        folder = resolved.output
        prepared = prepare_data(config_json=config_json, run_dir=folder)
        prepared.set_display_name("prepare: features, targets, plan")
        shards = list_shards(run_dir=prepared.outputs["Output"]).set_display_name("plan shards")

        with dsl.ParallelFor(shards.output, parallelism=parallelism) as shard:
            screened = screen_shard(config_json=config_json, shard_spec=shard)
            screened.set_display_name("screen shard")
        aggregated = aggregate_screen(
            config_json=config_json,
            run_dir=folder,
            shard_results=dsl.Collected(screened.outputs["Output"]),
        ).set_display_name("aggregate selected features")

        with dsl.ParallelFor(shards.output, parallelism=parallelism) as shard:
            tuned = tune_stage(config_json=config_json, shard_spec=shard, stage=1)
            tuned.set_display_name("tune stage 1 (defaults, every variant)").after(aggregated)
        winners = select_winners(
            config_json=config_json,
            run_dir=folder,
            stage=1,
            shard_results=dsl.Collected(tuned.outputs["Output"]),
        ).set_display_name("select group winners")

        with dsl.ParallelFor(shards.output, parallelism=parallelism) as shard:
            trained = train_shard(config_json=config_json, shard_spec=shard)
            trained.set_display_name("train production models").after(winners)
        infer_predictions(
            config_json=config_json,
            run_dir=folder,
            shard_results=dsl.Collected(trained.outputs["Output"]),
        ).set_display_name("infer: predictions and report")

    return alphafactory_pipeline
