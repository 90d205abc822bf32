"""The alphafactory pipeline: prepare → screen → tune stage ×4 → train → backtest → infer,
sharded fan-out.

`build_pipeline(config_json)` is what kfp.local runs; `build_pipeline(..., platform=Platform(
config))` is what is compiled per environment: every task then gets the environment's image,
limits, accelerator and (Kubernetes only) GPU node pool, by stage.
"""

from collections.abc import Callable
from typing import Any

from kfp import dsl

from components.backtest_models import aggregate_backtest, backtest_shard
from components.infer_predictions import infer_predictions
from components.prepare_data import list_shards, prepare_data, resolve_run_dir
from components.screen_features import aggregate_screen, screen_shard
from components.train_models import train_shard
from components.tune_stage import select_winners, tune_stage
from pipelines.platform import Platform, apply_platform

PIPELINE_NAME = "alphafactory"
#: The four uses of the one tune-stage component, each with its share of the budget.
TUNE_STAGES = (
    (1, "defaults, every variant"),
    (2, "Bayesian search, one representative per window"),
    (3, "learnings on every group, rolling-window CV"),
    (4, "focused search around each best"),
)


def build_pipeline(
    config_json: str, parallelism: int = 2, *, platform: Platform | None = None
) -> Callable[..., Any]:
    """The pipeline with this environment's settings as the `config_json` default.

    Without `platform` (local runs) tasks keep the components' image and no resources.
    """

    def on(task: dsl.PipelineTask, stage: str) -> dsl.PipelineTask:
        return apply_platform(platform, task, stage)

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
        on(resolved, "default")
        folder = resolved.output
        prepared = prepare_data(config_json=config_json, run_dir=folder)
        on(prepared, "prepare").set_display_name("prepare: features, targets, plan")
        shards = list_shards(run_dir=prepared.outputs["Output"]).set_display_name("plan shards")
        on(shards, "default")

        with dsl.ParallelFor(shards.output, parallelism=parallelism) as shard:
            screened = screen_shard(config_json=config_json, shard_spec=shard)
            on(screened, "screen").set_display_name("screen shard")
        aggregated = aggregate_screen(
            config_json=config_json,
            run_dir=folder,
            shard_results=dsl.Collected(screened.outputs["Output"]),
        ).set_display_name("aggregate selected features")
        on(aggregated, "default")

        previous: dsl.PipelineTask = aggregated
        for stage, title in TUNE_STAGES:
            with dsl.ParallelFor(shards.output, parallelism=parallelism) as shard:
                tuned = tune_stage(config_json=config_json, shard_spec=shard, stage=stage)
                tuned.set_display_name(f"tune stage {stage}: {title}").after(previous)
                on(tuned, "tune")
            previous = select_winners(
                config_json=config_json,
                run_dir=folder,
                stage=stage,
                shard_results=dsl.Collected(tuned.outputs["Output"]),
            ).set_display_name(f"tune stage {stage}: select")
            on(previous, "default")
        winners = previous

        with dsl.ParallelFor(shards.output, parallelism=parallelism) as shard:
            trained = train_shard(config_json=config_json, shard_spec=shard)
            trained.set_display_name("train production models").after(winners)
            on(trained, "train")
            # each shard's champions are walked forward once they are trained
            tested = backtest_shard(config_json=config_json, shard_spec=shard).after(trained)
            on(tested, "backtest").set_display_name("backtest: walk-forward over the test period")
        backtested = aggregate_backtest(
            config_json=config_json,
            run_dir=folder,
            shard_results=dsl.Collected(tested.outputs["Output"]),
        ).set_display_name("backtest: collect")
        on(backtested, "default")
        inferred = infer_predictions(
            config_json=config_json,
            run_dir=folder,
            shard_results=dsl.Collected(trained.outputs["Output"]),
        ).set_display_name("infer: predictions and report")
        inferred.after(backtested)
        on(inferred, "infer")

    return alphafactory_pipeline
