"""Small fsspec helpers so every stage reads and writes local paths and URIs alike."""

from __future__ import annotations

import json
import posixpath
import uuid
from collections.abc import Sequence
from typing import Any

import fsspec
import polars as pl
import pyarrow.parquet as pq

# `minio://` (KFP's artifact store on Kubernetes) is s3fs with an explicit endpoint; the
# class is imported on first use, so s3fs stays optional (the `cloud` extra).
fsspec.register_implementation(
    "minio",
    "alphafactory.objectstore.MinioFileSystem",
    clobber=True,
    errtxt="minio:// paths need s3fs: pip install 'alphafactory[cloud]'",
)


def join(base: str, *parts: str) -> str:
    """Join URI parts with '/' (works for local paths and `gs://` alike)."""
    return posixpath.join(base.rstrip("/"), *parts)


def _fs(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def exists(uri: str) -> bool:
    fs, path = _fs(uri)
    return bool(fs.exists(path))


def list_files(uri: str, suffix: str = "") -> list[str]:
    """Files directly under `uri` whose names end with `suffix`, sorted by name."""
    fs, path = _fs(uri)
    if not fs.exists(path):
        return []
    protocol = uri.split("://", 1)[0] + "://" if "://" in uri else ""
    names = [p for p in fs.ls(path, detail=False) if str(p).endswith(suffix)]
    return sorted(protocol + str(p) if protocol and "://" not in str(p) else str(p) for p in names)


def _publish(uri: str, payload: bytes) -> None:
    """Write to a temporary sibling and move it in place, so readers never see half a file."""
    fs, path = _fs(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with fs.open(temporary, "wb") as handle:
        handle.write(payload)
    fs.mv(temporary, path)


def write_bytes(uri: str, payload: bytes) -> None:
    _publish(uri, payload)


def write_text(uri: str, text: str) -> None:
    _publish(uri, text.encode())


def read_bytes(uri: str) -> bytes:
    with fsspec.open(uri, "rb") as handle:
        return bytes(handle.read())


def read_text(uri: str) -> str:
    with fsspec.open(uri, "r") as handle:
        return str(handle.read())


def write_json(uri: str, payload: Any) -> None:
    write_text(uri, json.dumps(payload, indent=2, sort_keys=True, default=str))


def read_json(uri: str) -> Any:
    return json.loads(read_text(uri))


def write_parquet(uri: str, frame: pl.DataFrame) -> None:
    fs, path = _fs(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with fs.open(temporary, "wb") as handle:
        frame.write_parquet(handle, compression="zstd", statistics=False)
    fs.mv(temporary, path)


def read_parquet(uri: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
    with fsspec.open(uri, "rb") as handle:
        table = pq.read_table(handle, columns=list(columns) if columns is not None else None)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def parquet_columns(uri: str) -> list[str]:
    with fsspec.open(uri, "rb") as handle:
        return list(pq.read_schema(handle).names)
