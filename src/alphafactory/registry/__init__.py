"""Model registry (MLflow-backed), semantic versions, grades, checksums and the model cache."""

from __future__ import annotations

from alphafactory.registry.cache import (
    CacheEntry,
    ModelCache,
    cache_key,
    canonical_json,
    config_hash,
    parse_age,
)
from alphafactory.registry.checksums import sha256_file, verify_checksum
from alphafactory.registry.grades import (
    BENCHMARKS,
    GRADE_CUTS,
    GRADES,
    Benchmark,
    grade_at_least,
    grade_cohort,
    grade_from_percentile,
    model_name,
)
from alphafactory.registry.mlflow_registry import CHAMPION, ModelRegistry, registered_model_name
from alphafactory.registry.records import Lineage, ModelInfo, RegisteredModel
from alphafactory.registry.versioning import SemVer, next_version

__all__ = [
    "BENCHMARKS",
    "CHAMPION",
    "GRADES",
    "GRADE_CUTS",
    "Benchmark",
    "CacheEntry",
    "Lineage",
    "ModelCache",
    "ModelInfo",
    "ModelRegistry",
    "RegisteredModel",
    "SemVer",
    "cache_key",
    "canonical_json",
    "config_hash",
    "grade_at_least",
    "grade_cohort",
    "grade_from_percentile",
    "model_name",
    "next_version",
    "parse_age",
    "registered_model_name",
    "sha256_file",
    "verify_checksum",
]
