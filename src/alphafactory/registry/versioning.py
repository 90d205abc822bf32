"""Semantic versions for registered models and the rule that picks the next one.

Rules: the first version of a model is 1.0.0; a new target or feature definition bumps the
major version, a retrain on new data bumps the minor version, and a retrain on the same data
with a new seed or new hyperparameters bumps the patch version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from alphafactory.errors import ConfigError

Change = Literal["definition", "data", "params"]
CHANGES: tuple[Change, ...] = ("definition", "data", "params")

_SEMVER_RE = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


@dataclass(frozen=True, order=True)
class SemVer:
    """A MAJOR.MINOR.PATCH version; compares numerically, prints without a leading 'v'."""

    major: int
    minor: int
    patch: int

    def __post_init__(self) -> None:
        if min(self.major, self.minor, self.patch) < 0:
            raise ConfigError(
                f"version {self.major}.{self.minor}.{self.patch} has a negative "
                "part: use non-negative integers such as 1.0.0"
            )

    @classmethod
    def parse(cls, text: str) -> SemVer:
        """Parse '1.2.3' (a leading 'v' is accepted) into a SemVer."""
        match = _SEMVER_RE.match(text.strip())
        if match is None:
            raise ConfigError(
                f"version {text!r} is not a semantic version: use MAJOR.MINOR.PATCH, e.g. 1.0.0"
            )
        major, minor, patch = (int(part) for part in match.groups())
        return cls(major, minor, patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


FIRST_VERSION = SemVer(1, 0, 0)


def next_version(previous: SemVer | None, change: Change) -> SemVer:
    """Return the version that follows ``previous`` after a change of the given kind.

    Args:
        previous: The latest version of the same model, or None for a model never registered.
        change: ``"definition"`` (new target or feature definition) bumps MAJOR and resets the
            rest, ``"data"`` (retrain on new data) bumps MINOR and resets PATCH, ``"params"``
            (same data, new seed or hyperparameters) bumps PATCH.

    Returns:
        1.0.0 when ``previous`` is None, otherwise the bumped version.

    Example:
        >>> str(next_version(SemVer(1, 2, 3), "data"))
        '1.3.0'
    """
    if change not in CHANGES:
        raise ConfigError(f"version change {change!r} is unknown: use one of {', '.join(CHANGES)}")
    if previous is None:
        return FIRST_VERSION
    if change == "definition":
        return SemVer(previous.major + 1, 0, 0)
    if change == "data":
        return SemVer(previous.major, previous.minor + 1, 0)
    return SemVer(previous.major, previous.minor, previous.patch + 1)
