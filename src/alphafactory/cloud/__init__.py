"""Cloud publishing: Vertex AI Model Registry for the champions of Vertex runs."""

from __future__ import annotations

from alphafactory.cloud.vertex_registry import (
    VertexTarget,
    label_value,
    model_labels,
    publish_to_vertex,
    resolve_target,
    vertex_model_id,
)

__all__ = [
    "VertexTarget",
    "label_value",
    "model_labels",
    "publish_to_vertex",
    "resolve_target",
    "vertex_model_id",
]
