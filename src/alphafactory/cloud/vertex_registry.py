"""Publish each group's champion to Vertex AI Model Registry (Vertex environments only).

Every group is one Vertex model with a stable id (`alphafactory-<group>`); each new champion is
uploaded as a new version of it (`parent_model`) carrying the alias `champion`. The model file
is copied to its own folder under the run folder on GCS, which becomes the `artifact_uri`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alphafactory import io
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.errors import ConfigError
from alphafactory.layout import MODEL_FILE, RunLayout
from alphafactory.runtime import run_id_of

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
RUN_LABEL = "pipeline_run"
_LABEL_MAX = 63
_UNSAFE = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class VertexTarget:
    """Where and how to publish: project, region, serving image, credentials."""

    project: str
    region: str
    serving_image: str
    labels: Mapping[str, str]
    credentials: Credentials | None = None


def label_value(text: str) -> str:
    """A Vertex label value: lowercase letters, digits, '_' and '-', at most 63 characters.

    Grades keep their sign readable: 'A+' -> 'a_plus', 'B-' -> 'b_minus'; dots become '-'.
    """
    spelled = text.lower().replace("+", "_plus").replace("-", "_minus").replace(".", "-")
    return _UNSAFE.sub("_", spelled)[:_LABEL_MAX]


def vertex_model_id(group: str) -> str:
    """The stable Vertex model id of one group (starts with a letter, `[a-z0-9_-]`)."""
    return f"alphafactory-{_UNSAFE.sub('_', group.lower())}"[:_LABEL_MAX]


def model_labels(
    record: Mapping[str, Any], group: str, extra: Mapping[str, str], run: str = ""
) -> dict[str, str]:
    """Labels of one uploaded version: the environment's labels plus grade, semver, group and
    the pipeline run that published it (`run_label_of`; what makes a repeated publish find
    its upload)."""
    return {
        **{label_value(k): label_value(v) for k, v in extra.items()},
        "managed_by": "alphafactory",
        "grade": label_value(str(record["grade"])),
        "semver": label_value(str(record["semver"])),
        "group": label_value(group),
        **({RUN_LABEL: run} if run else {}),
    }


def run_label_of(run_dir: str) -> str:
    """The run id of a run folder (`runtime.run_id_of`), as a label value."""
    return _UNSAFE.sub("_", run_id_of(run_dir).lower())[:_LABEL_MAX]


def uploaded_by_run(target: VertexTarget, parent: str, run: str) -> str | None:
    """The versioned resource name (`...@<version>`) this run already uploaded under `parent`,
    or None: a retried or repeated publish of the same run uploads nothing twice."""
    from google.cloud import aiplatform

    registry = aiplatform.models.ModelRegistry(
        model=parent, project=target.project, location=target.region,
        credentials=target.credentials,
    )  # fmt: skip
    versions = registry.list_versions(filter=f'labels.{RUN_LABEL}="{run}"')
    return f"{parent}@{versions[0].version_id}" if versions else None


def resolve_target(
    config: EnvironmentConfig,
    *,
    project: str | None = None,
    region: str | None = None,
    serving_image: str | None = None,
    credentials: Credentials | None = None,
) -> VertexTarget:
    """Project and region from the arguments, else the environment's `vertex` section."""
    section = config.vertex
    project = project or (section.project if section else None)
    region = region or (section.region if section else None)
    if not project or not region:
        raise ConfigError(
            f"environment {config.name} has no vertex.project / vertex.region: add a vertex "
            "section or pass project and region"
        )
    return VertexTarget(
        project=project,
        region=region,
        serving_image=serving_image or config.images.cpu,
        labels=dict(section.labels) if section else {},
        credentials=credentials,
    )


def stage_model_folder(layout: RunLayout, group: str) -> str:
    """Copy a group's model file into its own folder (`<run>/infer/vertex/<group>/`)."""
    folder = layout.path("infer", "vertex", group)
    io.write_bytes(io.join(folder, MODEL_FILE), io.read_bytes(layout.model(group)))
    return folder


def existing_model(target: VertexTarget, model_id: str) -> str | None:
    """The resource name of the group's Vertex model, or None when it does not exist yet."""
    from google.api_core.exceptions import NotFound
    from google.cloud import aiplatform

    try:
        model = aiplatform.Model(
            model_name=model_id,
            project=target.project,
            location=target.region,
            credentials=target.credentials,
        )
    except NotFound:
        return None
    return str(model.resource_name)


def upload_champion(
    target: VertexTarget, group: str, record: Mapping[str, Any], artifact_uri: str, run: str = ""
) -> str:
    """Upload one champion as a new version of its group's model, once per run (a version
    labelled with `run` is reused); returns the resource name."""
    from google.cloud import aiplatform

    model_id = vertex_model_id(group)
    parent = existing_model(target, model_id)
    if parent and run:
        earlier = uploaded_by_run(target, parent, run)
        if earlier:
            log.info("vertex: %s already uploaded by run %s: %s", group, run, earlier)
            return earlier
    uploaded = aiplatform.Model.upload(
        display_name=str(record["display_name"]),
        artifact_uri=artifact_uri,
        serving_container_image_uri=target.serving_image,
        model_id=None if parent else model_id,
        parent_model=parent,
        is_default_version=True,
        version_aliases=[CHAMPION_ALIAS],
        version_description=f"{record['model_id']} (semver {record['semver']})",
        description=f"alphafactory champion of group {group}",
        labels=model_labels(record, group, target.labels, run),
        project=target.project,
        location=target.region,
        credentials=target.credentials,
        sync=True,
    )
    return str(uploaded.resource_name)


def publish_to_vertex(
    config: EnvironmentConfig,
    published: Mapping[str, Mapping[str, Any]],
    *,
    run_dir: str,
    project: str | None = None,
    region: str | None = None,
    serving_image: str | None = None,
    credentials: Credentials | None = None,
) -> dict[str, str]:
    """Publish every group whose new version became champion; returns group -> resource name.

    Args:
        config: The environment; its `vertex` section gives project, region and labels.
        published: What `publish_models` returned: group -> model_id, display_name, semver,
            grade, champion.
        run_dir: The run folder (on GCS for Vertex runs) holding `train/models/<group>.txt`.
        project, region: Override the environment's vertex section.
        serving_image: The serving container; default: the environment's cpu image.
        credentials: Google credentials; default: the environment's (ADC).
    """
    champions = {g: r for g, r in sorted(published.items()) if r.get("champion")}
    if not champions:
        return {}
    if not run_dir.startswith("gs://"):
        raise ConfigError(
            f"run folder {run_dir} is not on GCS: Vertex AI serves models from gs:// "
            "folders; set the environment's pipeline_root to gs://<bucket>/<path>"
        )
    from google.cloud import aiplatform

    target = resolve_target(
        config,
        project=project,
        region=region,
        serving_image=serving_image,
        credentials=credentials,
    )
    aiplatform.init(project=target.project, location=target.region, credentials=credentials)
    layout = RunLayout(run_dir)
    names: dict[str, str] = {}
    for group, record in champions.items():
        folder = stage_model_folder(layout, group)
        names[group] = upload_champion(target, group, record, folder, run_label_of(run_dir))
        log.info("vertex: %s %s -> %s", group, record["semver"], names[group])
    return names
