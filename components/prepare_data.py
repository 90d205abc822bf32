"""Component: prepare data (features, targets, plan) and list the shards to fan out."""

from kfp import dsl
from kfp.dsl import Metrics, Output

from components import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def resolve_run_dir(run_dir: str, run_root: str, job_id: str) -> str:
    """The run folder every later task writes to."""
    from alphafactory.runtime import resolve_run_dir as resolve

    return resolve(run_dir, run_root, job_id)


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def prepare_data(config_json: str, run_dir: str, metrics: Output[Metrics]) -> str:
    """Features with hygiene filters, swing targets per group, and the run plan."""
    from alphafactory.runtime import config_from_json, log_metrics, setup_logging, task_failures
    from alphafactory.stages import run_prepare

    setup_logging()
    with task_failures(run_dir, "prepare-data"):
        log_metrics(metrics, run_prepare(config_from_json(config_json), run_dir))
    return run_dir


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def list_shards(run_dir: str) -> list:
    """The shards of the plan as `{"run_dir", "shard"}` items: the list a ParallelFor loops over.

    The run folder travels inside each item because kfp.local mis-binds task outputs from
    outside a loop when they are passed to a task inside it.
    """
    from alphafactory.layout import RunLayout, read_plan

    count = len(read_plan(RunLayout(run_dir)).shards)
    return [{"run_dir": run_dir, "shard": index} for index in range(count)]
