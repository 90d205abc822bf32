"""Component: batch predictions over the whole history, and the run report."""

from kfp import dsl
from kfp.dsl import HTML, Metrics, Output

from components import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def infer_predictions(
    config_json: str,
    run_dir: str,
    shard_results: list,
    metrics: Output[Metrics],
    report: Output[HTML],
) -> str:
    """Predict with every production model; publish the HTML report to the KFP UI."""
    from alphafactory import io
    from alphafactory.runtime import (
        config_from_json,
        log_metrics,
        setup_logging,
        task_failures,
        write_artifact_text,
    )
    from alphafactory.stages import run_infer

    setup_logging()
    with task_failures(run_dir, "infer-predictions"):
        log_metrics(metrics, run_infer(config_from_json(config_json), run_dir))
    write_artifact_text(report, io.read_text(io.join(run_dir, "report.html")))
    return run_dir
