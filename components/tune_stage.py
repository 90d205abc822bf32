"""Components: one tune stage over a shard, and the fan-in that picks each group's winner."""

from kfp import dsl
from kfp.dsl import Metrics, Output

from components import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def tune_stage(config_json: str, shard_spec: dict, stage: int, metrics: Output[Metrics]) -> str:
    """Fit the shard's variants for one tuning stage."""
    from alphafactory.runtime import config_from_json, log_metrics, setup_logging
    from alphafactory.stages import run_tune_shard

    setup_logging()
    run_dir, shard = str(shard_spec["run_dir"]), int(shard_spec["shard"])
    if stage != 1:
        raise ValueError(f"tune stage {stage} is not available yet; only stage 1 runs")
    log_metrics(metrics, run_tune_shard(config_from_json(config_json), run_dir, shard))
    return f"tune stage {stage} shard {shard}"


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def select_winners(
    config_json: str, run_dir: str, stage: int, shard_results: list, metrics: Output[Metrics]
) -> str:
    """Fan-in: the best variant of every group after a tuning stage."""
    from alphafactory.runtime import config_from_json, log_metrics, setup_logging
    from alphafactory.stages import run_select_winners

    setup_logging()
    log_metrics(metrics, run_select_winners(config_from_json(config_json), run_dir))
    return f"stage {stage}: {len(shard_results)} shards"
