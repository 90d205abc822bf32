"""Components: one tune stage over a shard, and the fan-in that picks each group's winner."""

from kfp import dsl
from kfp.dsl import Metrics, Output

from components import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def tune_stage(config_json: str, shard_spec: dict, stage: int, metrics: Output[Metrics]) -> str:
    """Fit the shard's variants for one tuning stage."""
    from alphafactory.runtime import config_from_json, log_metrics, setup_logging, task_failures
    from alphafactory.stages import run_search_shard, run_tune_shard

    setup_logging()
    run_dir, shard = str(shard_spec["run_dir"]), int(shard_spec["shard"])
    with task_failures(run_dir, f"tune-stage-{stage}-shard-{shard}"):
        config = config_from_json(config_json)
        if stage == 1:
            log_metrics(metrics, run_tune_shard(config, run_dir, shard))
        else:
            log_metrics(metrics, run_search_shard(config, run_dir, shard, stage))
    return f"tune stage {stage} shard {shard}"


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def select_winners(
    config_json: str, run_dir: str, stage: int, shard_results: list, metrics: Output[Metrics]
) -> str:
    """Fan-in: the best variant of every group after a tuning stage."""
    from alphafactory.runtime import config_from_json, log_metrics, setup_logging, task_failures
    from alphafactory.stages import run_select_search, run_select_winners

    setup_logging()
    with task_failures(run_dir, f"select-winners-{stage}"):
        config = config_from_json(config_json)
        if stage == 1:
            log_metrics(metrics, run_select_winners(config, run_dir))
        else:
            log_metrics(metrics, run_select_search(config, run_dir, stage))
    return f"stage {stage}: {len(shard_results)} shards"
