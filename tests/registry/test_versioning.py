"""Semantic version parsing, ordering and the bump rules."""

from __future__ import annotations

from typing import cast

import pytest

from alphafactory.errors import ConfigError
from alphafactory.registry import SemVer, next_version
from alphafactory.registry.versioning import Change


def test_parse_print_and_compare() -> None:
    assert SemVer.parse("1.2.3") == SemVer(1, 2, 3)
    assert SemVer.parse("v2.0.10") == SemVer(2, 0, 10)
    assert str(SemVer(1, 0, 0)) == "1.0.0"
    assert SemVer(1, 10, 0) > SemVer(1, 9, 9) > SemVer(1, 9, 0) > SemVer(0, 99, 99)
    assert max([SemVer(1, 2, 0), SemVer(1, 10, 0), SemVer(1, 3, 5)]) == SemVer(1, 10, 0)


@pytest.mark.parametrize("text", ["1.0", "1.0.0.0", "01.0.0", "1.a.0", "", "-1.0.0"])
def test_parse_rejects_bad_text(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a semantic version: use MAJOR.MINOR.PATCH"):
        SemVer.parse(text)


@pytest.mark.parametrize(
    ("change", "expected"),
    [("definition", SemVer(2, 0, 0)), ("data", SemVer(1, 3, 0)), ("params", SemVer(1, 2, 4))],
)
def test_next_version_rules(change: Change, expected: SemVer) -> None:
    assert next_version(SemVer(1, 2, 3), change) == expected


@pytest.mark.parametrize("change", ["definition", "data", "params"])
def test_first_version_is_1_0_0(change: Change) -> None:
    assert next_version(None, change) == SemVer(1, 0, 0)


def test_unknown_change_is_refused() -> None:
    with pytest.raises(ConfigError, match="version change 'seed' is unknown"):
        next_version(SemVer(1, 0, 0), cast(Change, "seed"))
