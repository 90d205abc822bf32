"""One file per saved model, whatever its family: a zip of the family's native payload files
and a `manifest.json` naming the family, its format, feature names and each file's SHA-256.

The chain of checksums is closed: the registry, the model cache and the train shard record
the SHA-256 of the bundle file, and the manifest inside it records the SHA-256 of every
payload file; `load_model` verifies both before the family reads a byte. Entries are written
in a fixed order with a fixed timestamp, so the same model always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io as stdio
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    with _open(Path(path)) as archive:
        return _manifest(archive, Path(path))


def load_model(path: Path | str, sha256: str | None = None) -> FittedModel:
    """Verify a bundle and rebuild its model with the family recorded in it.

    `sha256`, when given, is the digest the bundle file must have (from the registry, the
    cache manifest or the train shard): checked first. Then each payload file is checked
    against the manifest; a bundle with files it does not declare is refused.
    """
    from alphafactory.models._registry import family as family_named

    path = Path(path)
    if sha256 is not None:
        verify_checksum(path, sha256)
    with _open(path) as archive:
        manifest = _manifest(archive, path)
        declared = dict(manifest.get("files", {}))
        present = set(archive.namelist()) - {MANIFEST}
        if present != set(declared):
            raise ModelError(
                f"{path.name}: bundle holds {sorted(present)} but its manifest declares "
                f"{sorted(declared)}; the file was altered, retrain or re-download it"
            )
        files = {name: _member(archive, path, name) for name in sorted(declared)}
    for name, digest in declared.items():
        if _sha256(files[name]) != digest:
            raise ModelError(
                f"{path.name}: checksum mismatch for {name} inside the bundle; the model was "
                "altered, retrain or re-download it"
            )
    chosen = family_named(str(manifest.get("family", "")))
    return chosen.load(files, manifest)


def _open(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found") from None
    except zipfile.BadZipFile:
        raise ModelError(
            f"{path.name}: not an alphafactory model bundle (a zip with {MANIFEST}); "
            "retrain it with this version"
        ) from None


def _member(archive: zipfile.ZipFile, path: Path, name: str) -> bytes:
    if archive.getinfo(name).file_size > MAX_MEMBER_BYTES:
        raise ModelError(f"{path.name}: member {name} is larger than {MAX_MEMBER_BYTES} bytes")
    return archive.read(name)


def _manifest(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(_member(archive, path, MANIFEST))
    except KeyError:
        raise ModelError(f"{path.name}: bundle has no {MANIFEST}; retrain the model") from None
    except ValueError as exc:
        raise ModelError(f"{path.name}: {MANIFEST} is not JSON ({exc})") from None
    version = manifest.get("bundle_format") if isinstance(manifest, dict) else None
    if version != BUNDLE_FORMAT:
        raise ModelError(
            f"{path.name}: unknown bundle format {version!r} (this version reads {BUNDLE_FORMAT})"
        )
    return manifest
