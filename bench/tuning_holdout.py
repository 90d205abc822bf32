"""Tuned vs default parameters on a held-out period that tuning never saw.

The last `--holdout` share of the bars is cut off before the pipeline runs; prepare, screen
and the four tune stages run on the rest (the same stage functions the KFP components
call). Then, for every group winner, two production models are fitted on the tuning
period — one with the stage-1 default parameters, one with the tuned parameters — and both
are scored by average precision on the held-out bars' events. Features are causal, so
computing them over the full series leaks nothing into the held-out rows.

    python bench/tuning_holdout.py [--env local-dev] [--holdout 0.15] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from alphafactory.config import load_environment, with_data_uri
from alphafactory.features import build_feature_matrix
from alphafactory.metrics import average_precision
from alphafactory.models.variants import Variant, variant_grid
from alphafactory.stages import (
    run_prepare,
    run_screen_aggregate,
    run_screen_shard,
    run_search_shard,
    run_select_search,
    run_select_winners,
    run_tune_shard,
)
from alphafactory.stages.common import RunLayout, load_matrix, read_plan
from alphafactory.stages.fitting import load_group
from alphafactory.stages.prepare import load_source_bars
from alphafactory.stages.search import tuned_params
from alphafactory.stages.train import production_params
from alphafactory.stages.tune import default_params
from alphafactory.targets.swing import build_targets

log = logging.getLogger("bench.tuning_holdout")


def run_tuning(config: Any, run_dir: str) -> float:
    """prepare → screen → tune stages 1-4 in this process; returns wall seconds."""
    started = time.perf_counter()
    run_prepare(config, run_dir)
    shards = range(len(read_plan(RunLayout(run_dir)).shards))
    for shard in shards:
        run_screen_shard(config, run_dir, shard)
    run_screen_aggregate(config, run_dir)
    for shard in shards:
        run_tune_shard(config, run_dir, shard)
    run_select_winners(config, run_dir)
    for stage in (2, 3, 4):
        for shard in shards:
            run_search_shard(config, run_dir, shard, stage)
        run_select_search(config, run_dir, stage)
    return time.perf_counter() - started


def holdout_rows(
    bars: pl.DataFrame, variant: Variant, features: pl.DataFrame, start: Any
) -> tuple[pl.DataFrame, np.ndarray]:
    """Feature rows and labels of the variant's events inside the held-out period."""
    targets = build_targets(bars, variant_grid(variant), [variant.symbol])[variant.group_id]
    events = targets.filter(
        pl.col(variant.variant_id).is_not_null() & (pl.col("timestamp") >= start)
    )
    rows = events.join(features, on="timestamp", how="left")
    return rows, rows[variant.variant_id].to_numpy().astype(int)


def fit_and_score(
    group: Any, variant: Variant, params: dict[str, Any], config: Any, rows: pl.DataFrame
) -> float:
    from alphafactory.models.lightgbm_shard import fit_variant

    result = fit_variant(
        group,
        variant.variant_id,
        params,
        config.train.num_rounds,
        config.train.early_stopping,
        min_rows=config.tune.min_rows,
        keep_model=True,
    )
    if result.booster is None:
        return float("nan")
    booster: lgb.Booster = result.booster
    matrix = rows.select(booster.feature_name()).to_numpy().astype(np.float32)
    probabilities = np.asarray(booster.predict(matrix, num_iteration=booster.best_iteration))
    return average_precision(rows[variant.variant_id].to_numpy().astype(int), probabilities)


def compare(config: Any, run_dir: str, bars: pl.DataFrame, start: Any) -> list[dict[str, Any]]:
    layout = RunLayout(run_dir)
    plan = read_plan(layout)
    winners = json.loads(Path(layout.tune_winners(1)).read_text())["winners"]
    matrix = load_matrix(layout, json.loads(Path(layout.selected_features).read_text()))
    features = build_feature_matrix(bars, config.features.scale)
    rows_out = []
    for gid, row in winners.items():
        variant = next(v for v in plan.groups[gid] if v.variant_id == row["variant_id"])
        group = load_group(layout, plan, matrix, config, [variant])
        rows, labels = holdout_rows(bars, variant, features, start)
        if group is None or len(np.unique(labels)) < 2:
            continue
        default = production_params(config, default_params(config))
        tuned = production_params(config, tuned_params(config, layout, gid))
        rows_out.append(
            {
                "group": gid,
                "variant": variant.variant_id,
                "holdout_events": rows.height,
                "default_ap": fit_and_score(group, variant, default, config, rows),
                "tuned_ap": fit_and_score(group, variant, tuned, config, rows),
                "tuned_params": {
                    k: tuned[k] for k in ("num_leaves", "max_depth", "learning_rate", "lambda_l1")
                },  # fmt: skip
            }
        )
    return rows_out


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    valid = [r for r in rows if np.isfinite(r["default_ap"]) and np.isfinite(r["tuned_ap"])]
    deltas = [r["tuned_ap"] - r["default_ap"] for r in valid]
    return {
        "groups": len(valid),
        "mean_default_ap": statistics.fmean(r["default_ap"] for r in valid),
        "mean_tuned_ap": statistics.fmean(r["tuned_ap"] for r in valid),
        "mean_delta_ap": statistics.fmean(deltas),
        "median_delta_ap": statistics.median(deltas),
        "share_improved": sum(d > 0 for d in deltas) / len(deltas),
    }


def write_results(out: Path, payload: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "tuning_holdout.json").write_text(json.dumps(payload, indent=2, default=str))
    s = payload["summary"]
    lines = [
        "# Tuned vs default parameters on a held-out period",
        "",
        f"Machine: {payload['machine']}. Environment {payload['env']}, "
        f"holdout = last {payload['holdout']:.0%} of the bars (from {payload['holdout_start']}), "
        f"tuning budget {payload['budget_core_seconds']} core-seconds, "
        f"tuning took {payload['tuning_seconds']:.0f} s.",
        "",
        "| groups | mean default AP | mean tuned AP | mean ΔAP | median ΔAP | share improved |",
        "|---|---|---|---|---|---|",
        f"| {s['groups']} | {s['mean_default_ap']:.4f} | {s['mean_tuned_ap']:.4f} | "
        f"{s['mean_delta_ap']:+.4f} | {s['median_delta_ap']:+.4f} | {s['share_improved']:.0%} |",
        "",
        "| group | holdout events | default AP | tuned AP |",
        "|---|---|---|---|",
        *[
            f"| {r['group']} | {r['holdout_events']} | {r['default_ap']:.4f} | "
            f"{r['tuned_ap']:.4f} |"
            for r in payload["groups"]
        ],
    ]
    (out / "tuning_holdout.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local-dev")
    parser.add_argument("--holdout", type=float, default=0.15)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = load_environment(args.env)
    bars = load_source_bars(config)
    stamps = bars["timestamp"].unique().sort()
    start = stamps[int(len(stamps) * (1 - args.holdout))]
    with tempfile.TemporaryDirectory() as scratch:
        tuning_bars = Path(scratch) / "tuning_bars.parquet"
        bars.filter(pl.col("timestamp") < start).write_parquet(tuning_bars)
        tuning_config = with_data_uri(config, str(tuning_bars))
        run_dir = str(Path(scratch) / "runs" / "bench")
        seconds = run_tuning(tuning_config, run_dir)
        groups = compare(tuning_config, run_dir, bars, start)
    payload = {
        "env": config.name,
        "holdout": args.holdout,
        "holdout_start": str(start),
        "budget_core_seconds": config.tune.budget_core_seconds,
        "tuning_seconds": seconds,
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} cores, lightgbm {lgb.__version__}",
        "summary": summarise(groups),
        "groups": groups,
    }
    write_results(args.out, payload)
    print(json.dumps(payload["summary"], indent=2))


if __name__ == "__main__":
    main()
