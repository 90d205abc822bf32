"""`minio://` URIs: Kubeflow Pipelines' in-cluster MinIO (any S3-compatible store) via s3fs.

KFP on Kubernetes keeps its artifacts at `minio://<bucket>/<path>`, and a kind environment
puts the pipeline's own run folders there too. fsspec knows no `minio` protocol, so this
module provides one: s3fs pointed at the store's endpoint. The endpoint comes from
`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (botocore's own variables, which the compiled
spec sets on every task from the environment's `object_store.endpoint_url`); credentials
come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (which the spec maps from the
`object_store.credentials_secret` Kubernetes Secret, `mlpipeline-minio-artifact` on KFP).

The protocol is registered with fsspec by `alphafactory.io` and by the package's
`fsspec.specs` entry point, so every fsspec call in the library accepts `minio://` paths.
s3fs is part of the `cloud` extra.
"""

from __future__ import annotations

import os
from typing import Any

from s3fs import S3FileSystem

from alphafactory.errors import ConfigError

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def endpoint_from_environment() -> str | None:
    """The S3 endpoint botocore would use from the process environment, if any."""
    for name in ENDPOINT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


class MinioFileSystem(S3FileSystem):
    """s3fs for `minio://bucket/key` paths; refuses to run without an explicit endpoint.

    Without an endpoint, s3fs would silently talk to AWS S3 instead of the cluster's MinIO.
    """

    protocol = ("minio",)

    def __init__(self, *args: Any, endpoint_url: str | None = None, **kwargs: Any) -> None:
        client_kwargs = kwargs.get("client_kwargs") or {}
        endpoint = endpoint_url or client_kwargs.get("endpoint_url") or endpoint_from_environment()
        if not endpoint:
            raise ConfigError(
                "minio:// paths need the object store's endpoint: set AWS_ENDPOINT_URL "
                "(for KFP on kind: http://minio-service.kubeflow:9000); compiled specs set "
                "it from the environment's object_store.endpoint_url"
            )
        super().__init__(*args, endpoint_url=endpoint, **kwargs)


__all__ = ["ENDPOINT_VARIABLES", "MinioFileSystem", "endpoint_from_environment"]
