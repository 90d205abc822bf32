"""Component: production training of the group winners of one shard."""

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Markdown, Metrics, Output

from components import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def train_shard(
    config_json: str,
    shard_spec: dict,
    metrics: Output[Metrics],
    roc_neither: Output[ClassificationMetrics],
    roc_breakout: Output[ClassificationMetrics],
    roc_reversion: Output[ClassificationMetrics],
    summary: Output[Markdown],
) -> str:
    """500-1000 rounds with early stopping; model file, importance and PR curves per group.

    `roc_<class>`: the confusion matrix and the class's ROC curve over the shard's champions'
    pooled test-period events; `summary`: every group's test-period figures (see
    `alphafactory.stages.kfp_artifacts`).
    """
    from alphafactory.runtime import config_from_json, log_metrics, setup_logging, task_failures
    from alphafactory.stages import run_train_shard
    from alphafactory.stages.kfp_artifacts import publish_train_shard

    setup_logging()
    run_dir, shard = str(shard_spec["run_dir"]), int(shard_spec["shard"])
    with task_failures(run_dir, f"train-shard-{shard}"):
        log_metrics(metrics, run_train_shard(config_from_json(config_json), run_dir, shard))
        rocs = {"neither": roc_neither, "breakout": roc_breakout, "reversion": roc_reversion}
        publish_train_shard(run_dir, shard, rocs, summary)
    return f"train shard {shard}"
