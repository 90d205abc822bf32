"""What the registry stores about a model version: lineage, the tags that carry it, and the
read-only records (RegisteredModel, ModelInfo) the registry hands back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from alphafactory.errors import ModelError
from alphafactory.registry.versioning import SemVer

MANAGED_BY = "alphafactory"
PARENT_SEPARATOR = ","

# Tag keys on every model version the registry creates.
TAG_MANAGED_BY = "managed_by"
TAG_SEMVER = "semver"
TAG_GRADE = "grade"
TAG_MODEL_TYPE = "model_type"
TAG_SYMBOL = "symbol"
TAG_GROUP = "group"
TAG_SHA256 = "sha256"
TAG_ARTIFACT_FILE = "artifact_file"
TAG_DISPLAY_NAME = "display_name"
TAG_DATA_HASH = "data_hash"
TAG_FEATURE_COUNT = "feature_count"
TAG_FEATURE_HASH = "feature_hash"
TAG_PARENTS = "parent_models"
TAG_PIPELINE_RUN = "pipeline_run_id"
# Honesty tags: the periods the model was chosen on and its skill test on the test period.
TAG_SELECTION_START = "selection_start"
TAG_TEST_START = "test_start"
TAG_SKILL = "skill"
TAG_PRESET = "preset"
TAG_SKILL_P = "skill_p_adjusted"
#: The bars' origin (`alphafactory.data.sources.BarsOrigin.label`), e.g. `exchange binance
#: BTC/USDT (1h)` or `synthetic (fallback after: <error>)`.
TAG_DATA_SOURCE = "data_source"
#: "true" when the bars were a synthetic stand-in for a failed fetch: promote refuses those.
TAG_DATA_FALLBACK = "data_fallback"
SKILL_YES, SKILL_NO = "yes", "no"

REQUIRED_TAGS = (
    TAG_SEMVER,
    TAG_GRADE,
    TAG_MODEL_TYPE,
    TAG_SYMBOL,
    TAG_GROUP,
    TAG_SHA256,
    TAG_ARTIFACT_FILE,
    TAG_DISPLAY_NAME,
    TAG_DATA_HASH,
)


def feature_list_hash(features: tuple[str, ...] | list[str]) -> str:
    """SHA-256 of the JSON feature list, order included (column order matters to a model)."""
    return hashlib.sha256(json.dumps(list(features)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Lineage:
    """Where a model came from: its data, its input columns, its parents and its pipeline run."""

    data_hash: str
    feature_list: tuple[str, ...]
    parent_model_ids: tuple[str, ...] = ()
    pipeline_run_id: str = ""

    @property
    def feature_hash(self) -> str:
        return feature_list_hash(self.feature_list)

    def tags(self) -> dict[str, str]:
        """The short form stored as version tags (the full feature list is an artifact)."""
        for parent in self.parent_model_ids:
            if PARENT_SEPARATOR in parent:
                raise ModelError(
                    f"parent model id {parent!r} contains "
                    f"{PARENT_SEPARATOR!r}: use ids of the form name/version"
                )
        return {
            TAG_DATA_HASH: self.data_hash,
            TAG_FEATURE_COUNT: str(len(self.feature_list)),
            TAG_FEATURE_HASH: self.feature_hash,
            TAG_PARENTS: PARENT_SEPARATOR.join(self.parent_model_ids),
            TAG_PIPELINE_RUN: self.pipeline_run_id,
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], feature_list: tuple[str, ...]) -> Lineage:
        parents = tags.get(TAG_PARENTS, "")
        return cls(
            data_hash=tags.get(TAG_DATA_HASH, ""),
            feature_list=feature_list,
            parent_model_ids=tuple(parents.split(PARENT_SEPARATOR)) if parents else (),
            pipeline_run_id=tags.get(TAG_PIPELINE_RUN, ""),
        )


@dataclass(frozen=True)
class VersionRow:
    """One model version as a store holds it: name, number, run, source, tags, aliases."""

    name: str
    version: int
    run_id: str
    source: str
    tags: Mapping[str, str]
    aliases: tuple[str, ...] = ()

    def matches(self, name: str | None, tags: Mapping[str, str]) -> bool:
        """Whether the version has name `name` (any, when None) and every tag of `tags`."""
        if name is not None and self.name != name:
            return False
        return all(self.tags.get(key) == value for key, value in tags.items())


@dataclass(frozen=True)
class RegisteredModel:
    """One model version in the registry; ``model_id`` is ``{name}/{version}``."""

    name: str
    version: int
    semver: SemVer
    grade: str
    model_type: str
    symbol: str
    group: str
    display_name: str
    sha256: str
    artifact_file: str
    run_id: str
    aliases: tuple[str, ...] = ()

    @property
    def model_id(self) -> str:
        return f"{self.name}/{self.version}"

    @classmethod
    def from_row(cls, row: VersionRow) -> RegisteredModel:
        return cls.from_version(row.name, row.version, row.run_id, row.tags, row.aliases)

    @classmethod
    def from_version(
        cls,
        name: str,
        version: int | str,
        run_id: str,
        tags: Mapping[str, str],
        aliases: tuple[str, ...] = (),
    ) -> RegisteredModel:
        """Build from a model version's fields; refuses versions this registry did not write."""
        missing = [key for key in REQUIRED_TAGS if key not in tags]
        if missing:
            raise ModelError(
                f"model {name}/{version} lacks the tags {', '.join(missing)}: it "
                "was not registered by alphafactory; register it with "
                "ModelRegistry.register"
            )
        return cls(
            name=name,
            version=int(version),
            semver=SemVer.parse(tags[TAG_SEMVER]),
            grade=tags[TAG_GRADE],
            model_type=tags[TAG_MODEL_TYPE],
            symbol=tags[TAG_SYMBOL],
            group=tags[TAG_GROUP],
            display_name=tags[TAG_DISPLAY_NAME],
            sha256=tags[TAG_SHA256],
            artifact_file=tags[TAG_ARTIFACT_FILE],
            run_id=run_id,
            aliases=tuple(sorted(aliases)),
        )


@dataclass(frozen=True)
class ModelInfo:
    """Everything known about one version: the record, its lineage, metrics, params, tags."""

    model: RegisteredModel
    lineage: Lineage
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def sha256(self) -> str:
        return self.model.sha256
