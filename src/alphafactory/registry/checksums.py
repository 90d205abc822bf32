"""SHA-256 digests of model files, computed in chunks, and the check run before any load."""

from __future__ import annotations

import hashlib
from pathlib import Path

from alphafactory.errors import ModelError

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
