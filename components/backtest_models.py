"""Components: the walk-forward backtest of one shard's champions, and its fan-in."""

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output

from components import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def backtest_shard(
    config_json: str, shard_spec: dict, metrics: Output[Metrics], summary: Output[Markdown]
) -> str:
    """Refit each champion per window over the test period; trades, metrics, population scores.

    `summary`: the trading metrics of the shard's champions, as the run report's table.
    """
    from alphafactory.runtime import config_from_json, log_metrics, setup_logging, task_failures
    from alphafactory.stages import run_backtest_shard
    from alphafactory.stages.kfp_artifacts import publish_backtest_shard

    setup_logging()
    run_dir, shard = str(shard_spec["run_dir"]), int(shard_spec["shard"])
    with task_failures(run_dir, f"backtest-shard-{shard}"):
        config = config_from_json(config_json)
        log_metrics(metrics, run_backtest_shard(config, run_dir, shard))
        publish_backtest_shard(config, run_dir, shard, summary)
    return f"backtest shard {shard}"


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def aggregate_backtest(
    config_json: str, run_dir: str, shard_results: list, metrics: Output[Metrics]
) -> str:
    """Fan-in: every shard's backtests in one results file."""
    from alphafactory.runtime import config_from_json, log_metrics, setup_logging, task_failures
    from alphafactory.stages import run_backtest_aggregate

    setup_logging()
    with task_failures(run_dir, "aggregate-backtest"):
        log_metrics(metrics, run_backtest_aggregate(config_from_json(config_json), run_dir))
    return f"{len(shard_results)} shards backtested"
