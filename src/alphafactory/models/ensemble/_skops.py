"""scikit-learn objects stored with skops (never pickle), in a canonical byte form.

`skops.io.dumps` names every node and array file by the `id()` of the object it came from
and stamps the zip entries with the current time, so the same model gives different bytes on
every call, and tree node records carry uninitialised padding bytes. `dumps` here renumbers
those ids and file names in the order the schema first mentions them, zeroes the padding and
rewrites the zip with fixed timestamps, so equal models give equal bytes
(the bundle's checksum and the model cache rely on it). `loads` reads only the skops format,
trusting the explicit list of type names it is given beyond skops' own safe defaults: a
pickle or garbage fails as `ModelError` without anything in it being run.
"""

from __future__ import annotations

import io as stdio
import json
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from alphafactory.errors import ModelError
from alphafactory.models._base import require

SCHEMA = "schema.json"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _renumber(node: Any, ids: dict[int, int], files: dict[str, str]) -> Any:
    """`node` with every `__id__` and array file name replaced by its first-seen number."""
    if isinstance(node, list):
        return [_renumber(item, ids, files) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "__id__" and isinstance(value, int) and not isinstance(value, bool):
            out[key] = ids.setdefault(value, len(ids) + 1)
        elif key == "file" and isinstance(value, str):
            suffix = value[value.rfind(".") :] if "." in value else ""
            out[key] = files.setdefault(value, f"{len(files) + 1:06d}{suffix}")
        else:
            out[key] = _renumber(value, ids, files)
    return out


def _zero_padding(payload: bytes) -> bytes:
    """A `.npy` payload whose structured dtype has padding, rewritten with zeroed padding.

    scikit-learn's tree node records leave padding bytes uninitialised, so the same tree
    would otherwise be written with different bytes. Other payloads are returned as they are.
    """
    try:
        array = np.load(stdio.BytesIO(payload), allow_pickle=False)
    except ValueError:
        return payload
    fields = array.dtype.fields
    if not fields or sum(array.dtype[name].itemsize for name in fields) == array.dtype.itemsize:
        return payload
    clean = np.zeros(array.shape, dtype=array.dtype)
    for name in fields:
        clean[name] = array[name]
    buffer = stdio.BytesIO()
    np.save(buffer, clean, allow_pickle=False)
    return buffer.getvalue()


def dumps(obj: Any) -> bytes:
    """The skops bytes of `obj`, canonical: the same object state always gives the same bytes."""
    sio = require("skops.io", "registry")
    with zipfile.ZipFile(stdio.BytesIO(sio.dumps(obj))) as raw:
        schema = json.loads(raw.read(SCHEMA))
        files: dict[str, str] = {}
        canonical = _renumber(schema, {}, files)
        members = set(raw.namelist()) - {SCHEMA}
        if members != set(files):
            raise ModelError(
                f"skops wrote files {sorted(members - set(files))} its schema does not name; "
                "this skops version is not supported"
            )
        payloads = {new: _zero_padding(raw.read(old)) for old, new in files.items()}
    buffer = stdio.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        text = json.dumps(canonical, separators=(",", ":")).encode()
        for name, payload in [(SCHEMA, text), *sorted(payloads.items())]:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, payload)
    return buffer.getvalue()


def loads(data: bytes, trusted: Sequence[str], what: str) -> Any:
    """The object stored in skops bytes `data`, trusting only `trusted` beyond skops' defaults.

    Anything else (another type, a pickle, garbage) fails as `ModelError` naming `what`.
    """
    sio = require("skops.io", "registry")
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises whatever the zip or JSON reader raises
        raise ModelError(f"{what} is not a skops file ({type(exc).__name__}: {exc})") from None
    unexpected = sorted(set(untrusted) - set(trusted))
    if unexpected:
        raise ModelError(
            f"{what} holds types this family does not trust: {', '.join(unexpected)}; "
            "retrain the model with this version"
        )
    try:
        return sio.loads(data, trusted=list(trusted))
    except Exception as exc:
        raise ModelError(f"{what} could not be read ({type(exc).__name__}: {exc})") from None
