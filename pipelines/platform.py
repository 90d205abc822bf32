"""Per-environment task settings applied at compile time: image, resources, GPU node pools.

One pipeline definition, compiled once per environment. On Kubernetes KFP a GPU stage gets
`nvidia.com/gpu` plus the node pool's kfp-kubernetes node selector and tolerations (the spec
then has a second `platforms.kubernetes` document); on Vertex AI it gets an accelerator enum
and cpu/memory limits (Vertex picks the machine shape from them) and no kfp-kubernetes call,
so the spec stays a single YAML document that `aiplatform.PipelineJob` loads. A `minio://`
root gives every task the object store's endpoint and, on KFP, its credentials Secret. On KFP
every task carries the pod labels the MLflow NetworkPolicy admits (`POD_LABELS`) and, with
`registry.credentials_secret`, MLflow's basic-auth credentials as environment variables.
"""

from dataclasses import dataclass

from kfp.dsl import PipelineTask

from alphafactory.config.schema import EnvironmentConfig, StageResources

#: Fan-out stages whose shard tasks are retried; their work is idempotent.
RETRIED_STAGES = ("screen", "tune", "train", "backtest")
SHARD_RETRIES = 2
#: Labels of every pipeline pod on KFP; the Helm chart's MLflow NetworkPolicy admits them.
POD_LABELS = {"app.kubernetes.io/name": "alphafactory", "app.kubernetes.io/component": "pipeline"}


@dataclass(frozen=True)
class Platform:
    """Applies an environment's image and resources to each task of the pipeline."""

    config: EnvironmentConfig

    @property
    def kubernetes(self) -> bool:
        """True when the spec targets KFP on Kubernetes (kfp-kubernetes is allowed)."""
        return self.config.runner == "kfp"

    @property
    def enable_caching(self) -> bool:
        """The environment's caching choice, written into every task of the spec."""
        if self.config.runner == "vertex" and self.config.vertex is not None:
            return self.config.vertex.enable_caching
        return self.config.kfp.enable_caching

    def image(self, stage: str) -> str:
        resources = self.resources(stage)
        return self.config.images.gpu if resources.image == "gpu" else self.config.images.cpu

    def resources(self, stage: str) -> StageResources:
        resources: StageResources = getattr(self.config.resources, stage)
        return resources

    def apply(self, task: PipelineTask, stage: str) -> PipelineTask:
        """Set the image, limits, accelerator and (Kubernetes only) node pool of `task`."""
        resources = self.resources(stage)
        task.set_container_image(self.image(stage))
        # in the spec itself: kfp.Client(enable_caching=...) rewrites only the root DAG's tasks,
        # not the tasks inside ParallelFor loops
        task.set_caching_options(self.enable_caching)
        if resources.cpu is not None:
            task.set_cpu_limit(resources.cpu)
        if resources.memory is not None:
            task.set_memory_limit(resources.memory)
        if resources.accelerator_type is not None:
            task.set_accelerator_type(resources.accelerator_type)
            task.set_accelerator_limit(resources.accelerator_count)
        if resources.node_pool is not None and self.kubernetes:
            self._add_node_pool(task, resources.node_pool)
        if stage in RETRIED_STAGES:
            # Shard tasks are idempotent (studies resume from their journals, production fits
            # come from the cache), so a lost node or a process dying at exit costs one retry.
            task.set_retry(num_retries=SHARD_RETRIES, backoff_duration="5s")
        self._add_object_store(task)
        if self.kubernetes:
            self._add_registry_access(task)
        return task

    def _add_registry_access(self, task: PipelineTask) -> None:
        """Pod labels for the MLflow NetworkPolicy and, when configured, MLflow credentials."""
        from kfp import kubernetes

        for key, value in POD_LABELS.items():
            kubernetes.add_pod_label(task, label_key=key, label_value=value)
        registry = self.config.registry
        if registry.credentials_secret:
            kubernetes.use_secret_as_env(
                task,
                secret_name=registry.credentials_secret,
                secret_key_to_env={
                    registry.username_key: "MLFLOW_TRACKING_USERNAME",
                    registry.password_key: "MLFLOW_TRACKING_PASSWORD",
                },
            )

    def _add_object_store(self, task: PipelineTask) -> None:
        """Point the task's s3fs at the environment's object store (minio:// roots)."""
        store = self.config.object_store
        if store.endpoint_url:
            task.set_env_variable("AWS_ENDPOINT_URL", store.endpoint_url)
        if store.credentials_secret and self.kubernetes:
            from kfp import kubernetes

            kubernetes.use_secret_as_env(
                task,
                secret_name=store.credentials_secret,
                secret_key_to_env={
                    store.access_key_field: "AWS_ACCESS_KEY_ID",
                    store.secret_key_field: "AWS_SECRET_ACCESS_KEY",
                },
            )

    def _add_node_pool(self, task: PipelineTask, name: str) -> None:
        from kfp import kubernetes

        pool = self.config.node_pools[name]
        for key, value in sorted(pool.node_selector.items()):
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for toleration in pool.tolerations:
            kubernetes.add_toleration(
                task,
                key=toleration.key,
                operator=toleration.operator,
                value=toleration.value,
                effect=toleration.effect,
            )


def apply_platform(platform: Platform | None, task: PipelineTask, stage: str) -> PipelineTask:
    """`platform.apply(task, stage)`, or `task` unchanged for a local run (no platform)."""
    return task if platform is None else platform.apply(task, stage)


__all__ = ["POD_LABELS", "Platform", "apply_platform"]
