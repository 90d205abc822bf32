"""One file per saved model, whatever its family: a zip of the family's native payload files
and a `manifest.json` naming the family, its format, feature names and each file's SHA-256.

The chain of checksums is closed: the registry, the model cache and the train shard record
the SHA-256 of the bundle file, and the manifest inside it records the SHA-256 of every
payload file; `load_model` verifies both before the family reads a byte (`bundle_from_bytes`
does the same for a bundle nested in another, e.g. a stacking family's). Entries are written
in a fixed order with a fixed timestamp, so the same model always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io as stdio
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from alphafactory.errors import ModelError
from alphafactory.models._base import FittedModel, ModelFamily
from alphafactory.registry.checksums import verify_checksum

MANIFEST = "manifest.json"
BUNDLE_FORMAT = 1
_EPOCH = (1980, 1, 1, 0, 0, 0)
#: Refuse members larger than this (a zip bomb would otherwise be read into memory).
MAX_MEMBER_BYTES = 2 << 30


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def bundle_bytes(
    model: FittedModel, family: ModelFamily, extra: Mapping[str, Any] | None = None
) -> bytes:
    """The bundle of `model` as bytes (deterministic); `extra` joins the manifest."""
    files = model.files()
    if MANIFEST in files:
        raise ModelError(f"{family.name}: a payload file may not be called {MANIFEST}")
    manifest = {
        "bundle_format": BUNDLE_FORMAT,
        "family": family.name,
        "artifact_format": family.artifact_format,
        "feature_names": list(model.feature_names),
        "best_iteration": model.best_iteration,
        "files": {name: _sha256(payload) for name, payload in sorted(files.items())},
        **dict(extra or {}),
    }
    buffer = stdio.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        entries = [(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())]
        for name, payload in [*entries, *sorted(files.items())]:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, payload)
    return buffer.getvalue()


def save_model(
    model: FittedModel,
    family: ModelFamily,
    path: Path | str,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write `model` as one bundle file at `path` and return the path."""
    path = Path(path)
    path.write_bytes(bundle_bytes(model, family, extra))
    return path


def read_manifest(path: Path | str) -> dict[str, Any]:
    """The manifest of a bundle (family, feature names, payload checksums, extras)."""
    with _open(Path(path), Path(path).name) as archive:
        return _manifest(archive, Path(path).name)


def load_model(path: Path | str, sha256: str | None = None) -> FittedModel:
    """Verify a bundle and rebuild its model with the family recorded in it.

    `sha256`, when given, is the digest the bundle file must have (from the registry, the
    cache manifest or the train shard): checked first. Then each payload file is checked
    against the manifest; a bundle with files it does not declare is refused.
    """
    path = Path(path)
    if sha256 is not None:
        verify_checksum(path, sha256)
    return _load(path, path.name)


def bundle_from_bytes(
    payload: bytes, sha256: str | None = None, *, label: str = "nested bundle"
) -> FittedModel:
    """`load_model` for a bundle held in memory, e.g. one nested in a stacking family's bundle.

    `sha256`, when given, is the digest `payload` must have; the payload files are then
    checked against the bundle's manifest exactly as `load_model` does. `label` names the
    bundle in error messages.
    """
    if sha256 is not None and _sha256(payload) != sha256.lower():
        raise ModelError(
            f"{label} has sha256 {_sha256(payload)} but {sha256} was recorded: it was modified "
            "or corrupted; retrain the model or download it again"
        )
    return _load(stdio.BytesIO(payload), label)


def _load(source: Path | BinaryIO, label: str) -> FittedModel:
    # through the package, not `_registry` itself: stacking families that nest bundles are
    # registered there, and the package is fully imported by the time a model is loaded
    from alphafactory.models import family as family_named

    with _open(source, label) as archive:
        manifest = _manifest(archive, label)
        declared = dict(manifest.get("files", {}))
        present = set(archive.namelist()) - {MANIFEST}
        if present != set(declared):
            raise ModelError(
                f"{label}: bundle holds {sorted(present)} but its manifest declares "
                f"{sorted(declared)}; the file was altered, retrain or re-download it"
            )
        files = {name: _member(archive, label, name) for name in sorted(declared)}
    for name, digest in declared.items():
        if _sha256(files[name]) != digest:
            raise ModelError(
                f"{label}: checksum mismatch for {name} inside the bundle; the model was "
                "altered, retrain or re-download it"
            )
    chosen = family_named(str(manifest.get("family", "")))
    return chosen.load(files, manifest)


def _open(source: Path | BinaryIO, label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except FileNotFoundError:
        raise ModelError(f"{source}: model file not found") from None
    except zipfile.BadZipFile:
        raise ModelError(
            f"{label}: not an alphafactory model bundle (a zip with {MANIFEST}); "
            "retrain it with this version"
        ) from None


def _member(archive: zipfile.ZipFile, label: str, name: str) -> bytes:
    if archive.getinfo(name).file_size > MAX_MEMBER_BYTES:
        raise ModelError(f"{label}: member {name} is larger than {MAX_MEMBER_BYTES} bytes")
    return archive.read(name)


def _manifest(archive: zipfile.ZipFile, label: str) -> dict[str, Any]:
    try:
        manifest = json.loads(_member(archive, label, MANIFEST))
    except KeyError:
        raise ModelError(f"{label}: bundle has no {MANIFEST}; retrain the model") from None
    except ValueError as exc:
        raise ModelError(f"{label}: {MANIFEST} is not JSON ({exc})") from None
    version = manifest.get("bundle_format") if isinstance(manifest, dict) else None
    if version != BUNDLE_FORMAT:
        raise ModelError(
            f"{label}: unknown bundle format {version!r} (this version reads {BUNDLE_FORMAT})"
        )
    return manifest
