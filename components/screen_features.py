"""Components: screen one shard's variants, then aggregate the selected features."""

from kfp import dsl
from kfp.dsl import Metrics, Output

from components import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def screen_shard(config_json: str, shard_spec: dict, metrics: Output[Metrics]) -> str:
    """Shallow LightGBM per variant of the shard; top features per variant."""
    from alphafactory.runtime import config_from_json, log_metrics, setup_logging, task_failures
    from alphafactory.stages import run_screen_shard

    setup_logging()
    run_dir, shard = str(shard_spec["run_dir"]), int(shard_spec["shard"])
    with task_failures(run_dir, f"screen-shard-{shard}"):
        log_metrics(metrics, run_screen_shard(config_from_json(config_json), run_dir, shard))
    return f"screen shard {shard}"


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def aggregate_screen(
    config_json: str, run_dir: str, shard_results: list, metrics: Output[Metrics]
) -> str:
    """Fan-in: aggregate rankings across variants into the selected feature list."""
    from alphafactory.runtime import config_from_json, log_metrics, setup_logging, task_failures
    from alphafactory.stages import run_screen_aggregate

    setup_logging()
    with task_failures(run_dir, "aggregate-screen"):
        log_metrics(metrics, run_screen_aggregate(config_from_json(config_json), run_dir))
    return f"{len(shard_results)} shards aggregated"
