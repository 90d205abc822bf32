"""GitOps promotion: move the images an environment validated to the next one, by file edit.

`promote(root, "staging", "production")` checks the source's gates, then edits three files
under `root` (a checkout of this repository) and returns their unified diff for review:

- `manifests/overlays/<target overlay>/kustomization.yaml`: `images:` newName/digest,
- `pipelines/environments/<target>.yaml`: `images.cpu/gpu` and `promotion.promoted_from` +
  `promotion.source_spec_sha256` (the SHA-256 of `pipelines/compiled/<source>.yaml`, the
  spec the images were validated with: the pipeline spec reference),
- `pipelines/compiled/<target>.yaml`: recompiled from the edited environment file, so the
  golden specs stay fresh in the same commit.

Gates (refused with ConfigError naming the reason): the source's compiled spec is stale;
the source overlay's digests differ from the source environment's images; the source has no
champion model, a champion trained on synthetic fallback bars (`data.fallback`), a champion
without significant skill, a champion graded below the source's
`promotion.min_grade`, or a champion whose walk-forward backtest fails one of the source's
backtest gates (`promotion.min_deflated_sharpe`, `max_drawdown`, `min_trades`; a champion
without backtest metrics fails every gate that is set). The backtest refusal lists every
failing champion with each failing figure and its limit, e.g.
`alphafactory.ETH_w3_high/1 (deflated Sharpe 0.41 < 0.95; max drawdown 0.34 > 0.30)`.
"""

import difflib
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alphafactory.config import environment_path, load_environment, validate_environment
from alphafactory.config.loader import environments_dir
from alphafactory.config.platform import PromotionConfig
from alphafactory.config.schema import EnvironmentConfig
from alphafactory.errors import AlphaFactoryError, ConfigError, first_line
from alphafactory.names import redact_uri
from alphafactory.registry.grades import (
    METRIC_BACKTEST_MAX_DRAWDOWN,
    METRIC_BACKTEST_TRADES,
    METRIC_DEFLATED_SHARPE,
)
from pipelines.local import compiled_path, compiled_text

#: environment image key -> image name in the kustomize overlays
OVERLAY_IMAGE_NAMES = {"cpu": "alphafactory-cpu", "gpu": "alphafactory-gpu"}


@dataclass(frozen=True)
class Promotion:
    """The edits of one promotion: new text per file (relative path) and their diff."""

    source: str
    target: str
    files: dict[str, tuple[str, str]]  # path -> (old text, new text)
    notes: tuple[str, ...] = ()  # what was not checked (a dry run contacts nothing)

    @property
    def diff(self) -> str:
        chunks: list[str] = []
        for path, (old, new) in self.files.items():
            chunks.extend(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    fromfile=f"a/{path}",
                    tofile=f"b/{path}",
                )
            )
        return "".join(chunks)

    def write(self, root: Path) -> None:
        for path, (_, new) in self.files.items():
            (root / path).write_text(new)


def default_root() -> Path:
    """The checkout holding the packaged environments (what every other command reads)."""
    return environments_dir().parent.parent


def _environment(root: Path | None, name: str) -> tuple[Path, EnvironmentConfig]:
    if root is None:
        path = environment_path(name)
    else:
        path = root / "pipelines" / "environments" / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown environment '{name}': {path} does not exist")
    return path, load_environment(str(path), use_env_vars=False)


def is_local_uri(uri: str) -> bool:
    """A registry read from local files only (SQLite or a file store): no network."""
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def _overlay(root: Path, config: EnvironmentConfig, role: str) -> Path:
    if config.promotion.overlay is None:
        raise ConfigError(
            f"environment '{config.name}' has no promotion.overlay: it cannot be a promotion {role}"
        )
    path = root / "manifests" / "overlays" / config.promotion.overlay / "kustomization.yaml"
    if not path.is_file():
        raise ConfigError(f"promotion.overlay of '{config.name}': {path} does not exist")
    return path


def split_image(image: str) -> tuple[str, str]:
    """`name@sha256:...` -> (name, `sha256:...`)."""
    name, _, digest = image.partition("@")
    if not digest:
        raise ConfigError(f"image {image!r} is not pinned by digest")
    return name, digest


RegistryFactory = Callable[[str], Any]


@dataclass(frozen=True)
class BacktestGate:
    """One backtest gate: a `promotion` field, the registry metric it limits, its direction."""

    field: str
    metric: str
    label: str
    minimum: bool  # True: the figure must be at least the limit; False: at most
    integral: bool = False


BACKTEST_GATES = (
    BacktestGate("min_deflated_sharpe", METRIC_DEFLATED_SHARPE, "deflated Sharpe", minimum=True),
    BacktestGate("max_drawdown", METRIC_BACKTEST_MAX_DRAWDOWN, "max drawdown", minimum=False),
    BacktestGate("min_trades", METRIC_BACKTEST_TRADES, "trades", minimum=True, integral=True),
)
NO_BACKTEST = "no backtest metrics; re-run with backtest.enabled"


def _number(value: float) -> str:
    """A limit as configured: two decimals when they hold it exactly (0.30), else `g`."""
    if isinstance(value, int):
        return str(value)
    text = f"{value:.2f}"
    return text if float(text) == value else f"{value:g}"


def _figure(value: float, limit: float, gate: BacktestGate) -> str:
    """A failing figure with enough decimals not to read as its limit (0.9499, not 0.95)."""
    if gate.integral and math.isfinite(value):
        return str(int(value))
    for digits in range(2, 7):
        text = f"{value:.{digits}f}"
        if float(text) != limit:
            return text
    return repr(value)


def configured_gates(promotion: PromotionConfig) -> list[tuple[BacktestGate, float]]:
    """The backtest gates `promotion` sets, with their limits."""
    limits = [(gate, getattr(promotion, gate.field)) for gate in BACKTEST_GATES]
    return [(gate, limit) for gate, limit in limits if limit is not None]


def backtest_failures(promotion: PromotionConfig, metrics: Mapping[str, float]) -> list[str]:
    """Why a champion with these registry metrics fails the backtest gates (empty: it passes);
    a NaN figure fails its gate."""
    gates = configured_gates(promotion)
    if any(gate.metric not in metrics for gate, _ in gates):
        return [NO_BACKTEST]
    reasons = []
    for gate, limit in gates:
        value = float(metrics[gate.metric])
        passes = value >= limit if gate.minimum else value <= limit
        if not passes:
            sign = "<" if gate.minimum else ">"
            reasons.append(f"{gate.label} {_figure(value, limit, gate)} {sign} {_number(limit)}")
    return reasons


def _default_registry(tracking_uri: str) -> Any:
    from alphafactory.registry import ModelRegistry

    if not is_local_uri(tracking_uri):
        from pipelines.submit import check_reachable

        parts = tracking_uri.split("://", 1)[0]
        port = 5432 if parts.startswith("postgres") else 3306 if "mysql" in parts else 80
        check_reachable(
            tracking_uri,
            what="the model registry",
            fix="run where registry.tracking_uri is reachable, or pass --tracking-uri "
            "(e.g. sqlite:///runs/registry/mlflow.db)",
            default_port=port,
        )
    return ModelRegistry(tracking_uri=tracking_uri)


def check_gates(
    root: Path,
    source: EnvironmentConfig,
    *,
    tracking_uri: str | None = None,
    registry_factory: RegistryFactory = _default_registry,
    offline: bool = False,
) -> tuple[str, ...]:
    """Raise ConfigError with the reason when `source` may not be promoted; returns notes on
    gates not checked (`offline`: a remote registry is not contacted)."""
    spec = compiled_path(source.name, root)
    if not spec.is_file() or spec.read_text() != compiled_text(source):
        raise ConfigError(
            f"refusing to promote '{source.name}': {spec.relative_to(root)} is missing or "
            f"stale; run `alphafactory compile --env {source.name}`, commit, and let it run"
        )
    overlay = yaml.safe_load(_overlay(root, source, "source").read_text())
    pinned = {i["name"]: f"{i.get('newName', i['name'])}@{i.get('digest', '')}"
              for i in overlay.get("images", [])}  # fmt: skip
    for key, name in OVERLAY_IMAGE_NAMES.items():
        image = getattr(source.images, key)
        if pinned.get(name) != image:
            raise ConfigError(
                f"refusing to promote '{source.name}': images.{key} ({image}) differs from "
                f"manifests/overlays/{source.promotion.overlay} image {name} "
                f"({pinned.get(name)}); they must be the same build"
            )
    uri = tracking_uri or source.registry.tracking_uri
    if offline and not is_local_uri(uri):
        return (
            f"registry gates not checked: --dry-run contacts nothing and the registry at "
            f"{redact_uri(uri)} is remote; pass --tracking-uri sqlite:///… to check them offline",
        )
    try:
        registry = registry_factory(uri)
        names = sorted({model.name for model in registry.list_models()})
        champions = [c for c in (registry.champion(name) for name in names) if c is not None]
    except AlphaFactoryError:
        raise
    except Exception as exc:
        first = first_line(exc)[:200]
        raise ConfigError(
            f"cannot read the registry at {redact_uri(uri)} ({type(exc).__name__}: {first}): "
            "check registry.tracking_uri or pass --tracking-uri"
        ) from None
    if not champions:
        raise ConfigError(
            f"refusing to promote '{source.name}': no champion model in the registry at {uri}"
        )
    from alphafactory.registry.grades import grade_at_least
    from alphafactory.registry.records import (
        SKILL_YES,
        TAG_DATA_FALLBACK,
        TAG_DATA_SOURCE,
        TAG_SKILL,
    )

    infos = {c.model_id: registry.info(c.model_id) for c in champions}
    stand_ins = [c for c in champions if infos[c.model_id].tags.get(TAG_DATA_FALLBACK) == "true"]
    if stand_ins:
        listed = ", ".join(
            f"{c.model_id} ({infos[c.model_id].tags.get(TAG_DATA_SOURCE, 'synthetic')})"
            for c in stand_ins
        )
        raise ConfigError(
            f"refusing to promote '{source.name}': champions trained on synthetic fallback "
            f"bars, not the configured data: {listed}; fix the data source and retrain"
        )
    unskilled = [c for c in champions if infos[c.model_id].tags.get(TAG_SKILL) != SKILL_YES]
    if unskilled:
        listed = ", ".join(c.model_id for c in unskilled)
        raise ConfigError(
            f"refusing to promote '{source.name}': champions without significant skill on "
            f"their test period: {listed}; retrain them until they pass the skill test, or "
            "remove their champion alias"
        )
    minimum = source.promotion.min_grade
    below = [c for c in champions if not grade_at_least(c.grade, minimum)]
    if below:
        listed = ", ".join(f"{c.model_id} (grade {c.grade})" for c in below)
        raise ConfigError(
            f"refusing to promote '{source.name}': champions below promotion.min_grade "
            f"{minimum}: {listed}"
        )
    gates = configured_gates(source.promotion)
    failing = {
        c.model_id: reasons
        for c in champions
        if (reasons := backtest_failures(source.promotion, infos[c.model_id].metrics))
    }
    if failing:
        limits = ", ".join(f"promotion.{gate.field} {_number(limit)}" for gate, limit in gates)
        listed = ", ".join(f"{model_id} ({'; '.join(r)})" for model_id, r in failing.items())
        raise ConfigError(
            f"refusing to promote '{source.name}': champions failing the backtest gates "
            f"({limits}): {listed}"
        )
    return ()


def _set_overlay_images(text: str, images: dict[str, tuple[str, str]]) -> str:
    """Rewrite newName/digest of the named entries of the top-level `images:` list."""
    lines = text.splitlines(keepends=True)
    inside, current = False, ""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if line.startswith("images:"):
            inside = True
            continue
        if inside and line[:1] not in {" ", "-", "#", "\n", ""}:
            inside = False
        if not inside:
            continue
        body = stripped.removeprefix("- ")
        indent = line[: len(line) - len(line.lstrip())]
        if body.startswith("name:"):
            current = body.split(":", 1)[1].strip()
        elif current in images and body.startswith(("newName:", "digest:")):
            key = body.split(":", 1)[0]
            value = images[current][0 if key == "newName" else 1]
            prefix = indent + ("- " if stripped.startswith("- ") else "")
            lines[index] = f"{prefix}{key}: {value}\n"
    return "".join(lines)


def _set_block(text: str, block: str, values: dict[str, str]) -> str:
    """Set `key: value` lines of a top-level mapping block, appending missing keys to it."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == f"{block}:"), None)
    if start is None:
        lines.append(f"{block}:\n")
        start = len(lines) - 1
    end = start + 1
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        end += 1
    missing = dict(values)
    for index in range(start + 1, end):
        key = lines[index].strip().split(":", 1)[0]
        if lines[index].startswith("  ") and not lines[index].startswith("   ") and key in missing:
            lines[index] = f"  {key}: {missing.pop(key)}\n"
    insert = [f"  {key}: {value}\n" for key, value in missing.items()]
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    lines[end:end] = insert
    return "".join(lines)


def plan_promotion(
    root: Path | None,
    source_name: str,
    target_name: str,
    *,
    tracking_uri: str | None = None,
    registry_factory: RegistryFactory = _default_registry,
    offline: bool = False,
) -> Promotion:
    """Check the gates and compute the edits; nothing is written. `root` None: the checkout
    of the packaged environments; `offline`: a remote registry is not contacted."""
    if source_name == target_name:
        raise ConfigError("--from and --to name the same environment")
    _, source = _environment(None if root is None else Path(root), source_name)
    target_path, target = _environment(None if root is None else Path(root), target_name)
    root = default_root() if root is None else Path(root)
    target_overlay = _overlay(root, target, "target")
    notes = check_gates(
        root, source, tracking_uri=tracking_uri, registry_factory=registry_factory,
        offline=offline,
    )  # fmt: skip

    source_spec = compiled_path(source.name, root).read_text()
    images = {key: getattr(source.images, key) for key in OVERLAY_IMAGE_NAMES}
    overlay_old = target_overlay.read_text()
    overlay_new = _set_overlay_images(
        overlay_old, {OVERLAY_IMAGE_NAMES[k]: split_image(v) for k, v in images.items()}
    )
    env_old = target_path.read_text()
    env_new = _set_block(env_old, "images", images)
    env_new = _set_block(
        env_new,
        "promotion",
        {
            "promoted_from": source.name,
            "source_spec_sha256": hashlib.sha256(source_spec.encode()).hexdigest(),
        },
    )
    new_target = validate_environment(yaml.safe_load(env_new), source=str(target_path))
    spec_path = compiled_path(target.name, root)
    spec_old = spec_path.read_text() if spec_path.is_file() else ""
    files = {
        str(target_overlay.relative_to(root)): (overlay_old, overlay_new),
        str(target_path.relative_to(root)): (env_old, env_new),
        str(spec_path.relative_to(root)): (spec_old, compiled_text(new_target)),
    }
    return Promotion(source.name, target.name, files, notes)


def promote(
    root: Path | None,
    source_name: str,
    target_name: str,
    *,
    dry_run: bool = False,
    tracking_uri: str | None = None,
    registry_factory: RegistryFactory = _default_registry,
) -> Promotion:
    """Plan the promotion and, unless `dry_run`, write the edited files under `root`
    (None: the checkout of the packaged environments). A dry run contacts nothing: the
    registry gates are checked only when the registry is local (SQLite, files)."""
    promotion = plan_promotion(
        root,
        source_name,
        target_name,
        tracking_uri=tracking_uri,
        registry_factory=registry_factory,
        offline=dry_run,
    )
    if not dry_run:
        promotion.write(default_root() if root is None else Path(root))
    return promotion


__all__ = [
    "BACKTEST_GATES",
    "Promotion",
    "backtest_failures",
    "check_gates",
    "default_root",
    "is_local_uri",
    "plan_promotion",
    "promote",
    "split_image",
]
