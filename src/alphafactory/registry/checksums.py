"""SHA-256 digests of model files, computed in chunks, and the check run before any load."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

from alphafactory.errors import ModelError, first_line

_CHUNK_BYTES = 1 << 20


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks so large models never sit in memory."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                digest.update(chunk)
    except FileNotFoundError as error:
        raise ModelError(
            f"model file {path} is missing: retrain the model or download it again"
        ) from error
    return digest.hexdigest()


def verify_checksum(path: Path | str, expected: str) -> None:
    """Raise ModelError unless the file's SHA-256 equals ``expected``."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ModelError(
            f"model file {path} has sha256 {actual} but {expected} was recorded: the file was "
            "modified or corrupted; retrain the model or download it again"
        )


class ArtifactStore(Protocol):
    """What `download_verified` needs of a registry: download a version's file into a folder."""

    def download(self, model_id: str, dest: Path | str) -> Path: ...


def download_verified(store: ArtifactStore, model_id: str, sha256: str, dest: Path | str) -> Path:
    """Download a registered model's file and verify it against the registry's sha256 tag.

    A file missing from the registry's artifact store (deleted, or a store that moved) is a
    one-line ModelError naming the model, not the artifact client's traceback.
    """
    from mlflow.exceptions import MlflowException

    try:
        path = Path(store.download(model_id, dest))
    except (MlflowException, OSError) as error:
        raise ModelError(
            f"model {model_id}: its file cannot be downloaded from the registry "
            f"({first_line(error)}); "
            "the artifact is missing: re-register it with `alphafactory run`"
        ) from None
    verify_checksum(path, sha256)
    return path
