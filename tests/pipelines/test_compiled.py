"""Golden compiled specs: every environment recompiled into tmp must equal pipelines/compiled/."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from alphafactory.config import available_environments, load_environment
from alphafactory.targets.swing import CLASS_NAMES
from pipelines.local import COMPILED_DIR, compile_all

ENVIRONMENTS = ["central-dev", "integration-test", "local-dev", "local-integration",
                "production", "staging"]  # fmt: skip


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("compiled")
    compile_all(folder)
    return folder


def _docs(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(path.read_text()))


def test_six_environments() -> None:
    assert available_environments() == ENVIRONMENTS


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_compiled_spec_is_up_to_date(env: str, fresh: Path) -> None:
    golden = COMPILED_DIR / f"{env}.yaml"
    assert golden.is_file(), f"{golden} is missing: run `make compile`"
    assert (fresh / f"{env}.yaml").read_text() == golden.read_text(), (
        f"{golden} is stale: run `make compile` and commit the result"
    )


def test_install_pins_the_sdk_that_wrote_the_golden_specs() -> None:
    """constraints.txt holds kfp at the version every golden spec names in `sdkVersion`."""
    constraints = Path(__file__).resolve().parents[2] / "constraints.txt"
    pins = dict(
        line.split("==", 1) for line in constraints.read_text().splitlines() if "==" in line
    )
    assert pins.get("kfp"), f"{constraints} does not pin kfp"
    for env in ENVIRONMENTS:
        spec = _docs(COMPILED_DIR / f"{env}.yaml")[0]
        assert spec["sdkVersion"] == f"kfp-{pins['kfp']}", env
    # the kfp family moves together
    for name in ("kfp-kubernetes", "kfp-pipeline-spec", "kfp-server-api"):
        assert pins.get(name) == pins["kfp"], name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_spec_carries_the_environment(env: str) -> None:
    config = load_environment(env, use_env_vars=False)
    docs = _docs(COMPILED_DIR / f"{env}.yaml")
    spec = docs[0]
    default = spec["root"]["inputDefinitions"]["parameters"]["config_json"]["defaultValue"]
    assert json.loads(default) == config.model_dump(mode="json")
    executors = spec["deploymentSpec"]["executors"]
    images = {name: e["container"]["image"] for name, e in executors.items()}
    assert set(images.values()) <= {config.images.cpu, config.images.gpu}
    tune = executors["exec-tune-stage"]["container"]
    expected = config.images.gpu if config.resources.tune.image == "gpu" else config.images.cpu
    assert tune["image"] == expected
    resources = tune.get("resources", {})
    assert resources.get("resourceCpuLimit") == config.resources.tune.cpu
    assert resources.get("resourceMemoryLimit") == config.resources.tune.memory
    accelerator = resources.get("accelerator", {})
    assert accelerator.get("resourceType") == config.resources.tune.accelerator_type
    if config.runner == "vertex":
        assert len(docs) == 1  # aiplatform.PipelineJob cannot load a second document
    if config.node_pools and config.runner == "kfp":
        platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        pinned = sorted(name for name, e in platform.items() if "nodeSelector" in e)
        tune_stages = ["exec-tune-stage", "exec-tune-stage-2", "exec-tune-stage-3"]
        assert pinned == ["exec-train-shard", *tune_stages, "exec-tune-stage-4"]


def test_production_runs_gpu_stages_on_the_gpu_pool() -> None:
    spec, platform = _docs(COMPILED_DIR / "production.yaml")
    train = spec["deploymentSpec"]["executors"]["exec-train-shard"]["container"]
    assert train["resources"]["accelerator"] == {
        "count": "1", "resourceCount": "1", "resourceType": "nvidia.com/gpu",
        "type": "nvidia.com/gpu",
    }  # fmt: skip
    assert train["image"].endswith("alphafactory-gpu@sha256:" + "9" + "f" * 63)
    pool = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-shard"]
    assert {key: pool[key] for key in ("nodeSelector", "tolerations")} == {
        "nodeSelector": {"labels": {"cloud.google.com/gke-nodepool": "gpu-pool"}},
        "tolerations": [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}],
    }
    # the rest of a task's platform settings: labels and MLflow credentials (every task)
    assert set(pool) == {"nodeSelector", "tolerations", "podMetadata", "secretAsEnv"}


def test_staging_spec_is_vertex_shaped() -> None:
    (spec,) = _docs(COMPILED_DIR / "staging.yaml")
    train = spec["deploymentSpec"]["executors"]["exec-train-shard"]["container"]["resources"]
    assert train["accelerator"]["type"] == "NVIDIA_L4"
    assert train["resourceCpuLimit"] == "8" and train["resourceMemoryLimit"] == "32Gi"
    assert "platforms" not in spec


def test_minio_root_gives_every_task_the_store_and_its_secret() -> None:
    config = load_environment("local-integration", use_env_vars=False)
    assert config.pipeline_root.startswith("minio://")
    spec, platform = _docs(COMPILED_DIR / "local-integration.yaml")
    executors = spec["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        env = {e["name"]: e["value"] for e in executor["container"].get("env", [])}
        assert env == {"AWS_ENDPOINT_URL": "http://minio-service.kubeflow:9000"}, name
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert sorted(k8s) == sorted(executors)
    for name in executors:
        stores = [s for s in k8s[name]["secretAsEnv"] if "AWS_ACCESS_KEY_ID" in str(s)]
        assert stores == [
            {
                "secretName": "mlpipeline-minio-artifact",
                "secretNameParameter": {"runtimeValue": {"constant": "mlpipeline-minio-artifact"}},
                "keyToEnv": [
                    {"secretKey": "accesskey", "envVar": "AWS_ACCESS_KEY_ID"},
                    {"secretKey": "secretkey", "envVar": "AWS_SECRET_ACCESS_KEY"},
                ],
                "optional": False,
            }
        ], name


@pytest.mark.parametrize("env", ["production", "staging", "local-dev"])
def test_gcs_and_local_roots_get_no_object_store_settings(env: str) -> None:
    docs = _docs(COMPILED_DIR / f"{env}.yaml")
    for executor in docs[0]["deploymentSpec"]["executors"].values():
        assert "env" not in executor["container"]
    for doc in docs[1:]:
        for executor in doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
            secrets = [s["secretName"] for s in executor.get("secretAsEnv", [])]
            assert secrets in ([], ["alphafactory-mlflow-client"])  # MLflow's, no object store


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_the_idempotent_shard_tasks_are_retried(env: str) -> None:
    spec = _docs(COMPILED_DIR / f"{env}.yaml")[0]
    dags = [spec["root"], *spec["components"].values()]
    retries = {
        name: task.get("retryPolicy", {}).get("maxRetryCount")
        for dag in dags
        for name, task in dag.get("dag", {}).get("tasks", {}).items()
    }
    shard_tasks = ["screen-shard", "train-shard", "tune-stage", "tune-stage-2", "tune-stage-3",
                   "tune-stage-4"]  # fmt: skip
    assert {name: retries[name] for name in shard_tasks} == dict.fromkeys(shard_tasks, 2)
    # publishing is not idempotent (a rerun registers new versions): never retried
    assert retries["infer-predictions"] is None and retries["prepare-data"] is None
    assert all(retries[name] is None for name in retries if name.startswith("select-winners"))


#: The artifacts the KFP UI and the Vertex console show, per component (name: schema title).
VISIBLE_OUTPUTS = {
    "comp-train-shard": {
        "metrics": "system.Metrics",
        # one per class: KFP's ClassificationMetrics holds one ROC curve
        **{f"roc_{name}": "system.ClassificationMetrics" for name in CLASS_NAMES},
        "summary": "system.Markdown",
    },
    "comp-backtest-shard": {"metrics": "system.Metrics", "summary": "system.Markdown"},
    "comp-infer-predictions": {"metrics": "system.Metrics", "report": "system.HTML"},
}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_shard_and_report_tasks_declare_kfp_visible_artifacts(env: str) -> None:
    spec = _docs(COMPILED_DIR / f"{env}.yaml")[0]
    for component, expected in VISIBLE_OUTPUTS.items():
        outputs = spec["components"][component]["outputDefinitions"]["artifacts"]
        declared = {name: out["artifactType"]["schemaTitle"] for name, out in outputs.items()}
        assert declared == expected, (env, component)
