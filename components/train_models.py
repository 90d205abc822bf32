"""Component: production training of the group winners of one shard."""

from kfp import dsl
from kfp.dsl import Metrics, Output

from components import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def train_shard(config_json: str, shard_spec: dict, metrics: Output[Metrics]) -> str:
    """500-1000 rounds with early stopping; model file, importance and PR curves per group."""
    from alphafactory.runtime import config_from_json, log_metrics, setup_logging, task_failures
    from alphafactory.stages import run_train_shard

    setup_logging()
    run_dir, shard = str(shard_spec["run_dir"]), int(shard_spec["shard"])
    with task_failures(run_dir, f"train-shard-{shard}"):
        log_metrics(metrics, run_train_shard(config_from_json(config_json), run_dir, shard))
    return f"train shard {shard}"
