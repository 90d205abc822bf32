"""Streamed SHA-256 and the refusal of a modified model file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import train_tiny_lightgbm

from alphafactory.errors import ModelError
from alphafactory.registry import sha256_file, verify_checksum


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = train_tiny_lightgbm(tmp_path / "model.txt", seed=7)
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    verify_checksum(path, sha256_file(path).upper())


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    path = train_tiny_lightgbm(tmp_path / "model.txt", seed=7)
    expected = sha256_file(path)
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x20
    path.write_bytes(bytes(content))
    actual = hashlib.sha256(bytes(content)).hexdigest()
    with pytest.raises(ModelError) as caught:
        verify_checksum(path, expected)
    assert str(caught.value) == (
        f"model file {path} has sha256 {actual} but {expected} was recorded: the file was "
        "modified or corrupted; retrain the model or download it again"
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing.txt is missing: retrain the model"):
        sha256_file(tmp_path / "missing.txt")
