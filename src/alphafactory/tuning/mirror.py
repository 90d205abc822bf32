"""Keep a local study file (journal or SQLite) in step with a copy in the run folder.

A pipeline task's local disk is gone when its pod is preempted; the run folder (gs://, any
fsspec URI) is not. Pull the copy before opening the study, push after every trial, and a
retried task resumes with all finished trials. Only for single-owner studies: concurrent
workers share a database URL instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import fsspec

from alphafactory import io

log = logging.getLogger(__name__)


class StudyFileMirror:
    """A local study file mirrored to `uri` (any fsspec URI, e.g. the run folder)."""

    def __init__(self, uri: str, local_path: str | Path) -> None:
        self.uri = uri
        self.local_path = Path(local_path)

    def pull(self) -> bool:
        """Copy the mirrored file to the local path; False when there is none yet."""
        self.local_path.parent.mkdir(parents=True, exist_ok=True)
        if not io.exists(self.uri):
            return False
        with fsspec.open(self.uri, "rb") as handle:
            self.local_path.write_bytes(handle.read())
        log.info("resuming study file %s from %s", self.local_path, self.uri)
        return True

    def push(self) -> None:
        """Publish the local file to the mirror (atomically: readers never see half of it)."""
        if self.local_path.exists():
            io.write_bytes(self.uri, self.local_path.read_bytes())
