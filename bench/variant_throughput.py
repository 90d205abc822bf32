"""Variant-training throughput: process-per-variant reference vs the alphafactory shard executor.

One invocation prepares a seeded synthetic stage-1 data set (bars from ``generate_bars``,
targets from ``build_targets`` for a sub-grid of the default grid, a float32 feature matrix
aligned to the bars' timeline with some signal and NaNs), then times four phases on it:

reference     one OS process per variant (bench/reference_worker.py), ``--cores`` at a time,
              each importing lightgbm/polars/pyarrow, loading the parquet matrix, binning a
              fresh Dataset for the variant's rows and training (1 LightGBM thread each)
full          the real shard executor in one process: data loaded once, ``variant_rows`` +
              ``build_group`` per group, ``fit_variant`` on one pool streaming over the
              groups via ``fit_groups`` (``--lgbm-threads`` × concurrent fits = ``--cores``)
pure          the same variants' ``lgb.train`` calls alone on datasets built beforehand, same
              threads and concurrency: the floor of the overhead ratio
elimination   successive halving (``alphafactory.models.lightgbm.elimination``), the rungs of two
              consecutive groups sharing one pool via ``halve_groups``

Each phase but the reference runs in its own subprocess so its peak RSS is its own; wall
times include interpreter start and imports for every phase. Results: a JSON and a Markdown
table under ``--out`` (bench/results by default).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
VALIDATION_FRACTION = 0.2


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _strs(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--bars", type=int, default=100_000, help="bars per symbol = feature-matrix rows")
    add("--features", type=int, default=500, help="float32 feature columns")
    add("--nan-share", type=float, default=0.10, help="share of NaN cells in the matrix")
    add("--symbols", type=_strs, default=["BTC", "ETH", "SOL"])
    add("--windows", type=_ints, default=[5, 20])
    add("--swing-types", type=_strs, default=["high", "low"])
    add("--std-thresholds", type=_floats, default=[1.0, 2.0])
    add("--move-thresholds", type=_floats, default=[1.0])
    add("--horizons", type=_ints, default=[3, 6, 12, 24, 48])
    add("--seed", type=int, default=7)
    add("--cores", type=int, default=os.cpu_count() or 1, help="cores to use in every phase")
    add("--lgbm-threads", type=int, default=1, help="LightGBM threads per fit (alphafactory)")
    add("--num-rounds", type=int, default=300)
    add("--early-stopping", type=int, default=30)
    add("--learning-rate", type=float, default=0.1)
    add("--num-leaves", type=int, default=31)
    add("--max-depth", type=int, default=6)
    add("--min-rows", type=int, default=60)
    add("--first-rounds", type=int, default=10, help="elimination: rounds of the first rung")
    add("--eta", type=int, default=3, help="elimination: keep 1/eta, budgets grow ×eta")
    add("--min-survivors", type=int, default=1)
    add("--out", type=Path, default=BENCH_DIR / "results")
    add("--workdir", type=Path, default=None, help="data folder (a temporary one if unset)")
    add("--phase", choices=["full", "pure", "elimination"], default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- data set


def prepare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Write bars' targets, the feature matrix and each variant's rows; return the manifest."""
    import polars as pl

    from alphafactory import io
    from alphafactory.config.schema import GridConfig
    from alphafactory.data.splits import BEYOND_DATA, Periods, selection_split
    from alphafactory.data.synthetic import generate_bars
    from alphafactory.models.lightgbm.shard import variant_rows
    from alphafactory.targets.swing import build_targets
    from alphafactory.targets.variants import expand_grid, group_variants

    grid = GridConfig(
        windows=args.windows,
        swing_types=args.swing_types,
        std_thresholds=args.std_thresholds,
        move_thresholds=args.move_thresholds,
        horizons=args.horizons,
    )
    bars = generate_bars(args.symbols, n_bars=args.bars, frequency="1h", seed=args.seed)
    targets = build_targets(bars, grid, args.symbols)
    first = bars.filter(pl.col("symbol") == args.symbols[0])
    timeline = first["timestamp"].cast(pl.Datetime("us")).to_numpy()
    matrix = feature_matrix(bars, args.symbols, args.features, args.nan_share, args.seed)
    names = [f"f{i:04d}" for i in range(args.features)]
    frame = pl.DataFrame({"timestamp": first["timestamp"]}).hstack(
        pl.from_numpy(matrix, schema=names)
    )
    del matrix
    features_file = workdir / "features.parquet"
    io.write_parquet(str(features_file), frame)
    del frame
    # A throughput benchmark needs two periods only: train, and a validation period to the end.
    cutoff = np.sort(timeline)[int(len(timeline) * (1.0 - VALIDATION_FRACTION))]
    split = selection_split(Periods(cutoff, BEYOND_DATA))
    groups = group_variants(expand_grid(grid, args.symbols))
    manifest: dict[str, Any] = {"features_file": str(features_file), "groups": {}}
    (workdir / "rows").mkdir(exist_ok=True)
    for gid, variants in groups.items():
        target_file = workdir / f"targets_{gid}.parquet"
        io.write_parquet(str(target_file), targets[gid])
        _, _, per_variant = variant_rows(timeline, targets[gid], variants, split)
        entries = []
        for variant in variants:
            tr, ty, va, vy = per_variant[variant.variant_id]
            rows_file = workdir / "rows" / f"{variant.variant_id}.npz"
            np.savez(rows_file, train_rows=tr, train_labels=ty, valid_rows=va, valid_labels=vy)
            eligible = (
                len(tr) >= args.min_rows
                and len(va) >= max(10, args.min_rows // 5)
                and len(np.unique(ty)) >= 2
                and len(np.unique(vy)) >= 2
            )
            entries.append(
                {
                    "variant": variant.to_dict(),
                    "variant_id": variant.variant_id,
                    "rows_file": str(rows_file),
                    "n_train": len(tr),
                    "eligible": bool(eligible),
                }
            )
        manifest["groups"][gid] = {"targets_file": str(target_file), "variants": entries}
    manifest["cutoff"] = str(cutoff)
    manifest["matrix_shape"] = [len(timeline), args.features]
    return manifest


def feature_matrix(
    bars: Any, symbols: Sequence[str], n_features: int, nan_share: float, seed: int
) -> np.ndarray:
    """Noise columns plus noisy forward returns of every symbol (the signal), with NaNs."""
    import polars as pl

    rng = np.random.default_rng(seed + 1)
    n = bars.height // len(symbols)
    matrix = rng.standard_normal((n, n_features), dtype=np.float32)
    column = 0
    for symbol in symbols:
        close = bars.filter(pl.col("symbol") == symbol)["close"].to_numpy()
        log_returns = np.diff(np.log(close), prepend=np.nan)
        sigma = pl.Series(log_returns).rolling_std(40, min_samples=40).to_numpy()
        for horizon in (3, 6, 12, 24, 48):
            forward = np.full(n, np.nan)
            forward[:-horizon] = np.log(close[horizon:] / close[:-horizon])
            zscore = np.nan_to_num(forward / (sigma * np.sqrt(horizon)), nan=0.0)
            for noise in (1.0, 2.0, 4.0):
                if column >= n_features:
                    break
                matrix[:, column] = zscore + noise * matrix[:, column]
                column += 1
    for start in range(0, n, 10_000):  # NaNs in chunks to bound the temporary mask
        block = matrix[start : start + 10_000]
        block[rng.random(block.shape, dtype=np.float32) < nan_share] = np.nan
    return matrix


def lgb_params(args: argparse.Namespace, threads: int) -> dict[str, Any]:
    """Stage-1 parameters (fixed + the tuned space's defaults), as tune.default_params."""
    from alphafactory.models.lightgbm.family import DATASET_PARAMS, fixed_params

    return {
        **fixed_params(threads, args.seed),
        **DATASET_PARAMS,
        "seed": args.seed,
        "num_leaves": args.num_leaves,
        "max_depth": args.max_depth,
        "learning_rate": args.learning_rate,
        "lambda_l1": 0.0,
    }


# --------------------------------------------------------------------------- reference


def children_cpu_s() -> float:
    """User + system CPU seconds of all finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_reference(args: argparse.Namespace, manifest: dict[str, Any], workdir: Path) -> dict:
    from alphafactory.models.lightgbm.family import DATASET_PARAMS
    from alphafactory.models.lightgbm.shard import variant_params

    tasks: list[tuple[Path, Path]] = []
    skipped: list[dict[str, Any]] = []
    params = lgb_params(args, 1)
    (workdir / "ref").mkdir(exist_ok=True)
    for gid, group in manifest["groups"].items():
        for entry in group["variants"]:
            vid = entry["variant_id"]
            if not entry["eligible"]:
                skipped.append({"variant_id": vid, "group_id": gid, "status": "skipped"})
                continue
            task = {
                "variant_id": vid,
                "group_id": gid,
                "features_file": manifest["features_file"],
                "rows_file": entry["rows_file"],
                "dataset_params": {**DATASET_PARAMS, "seed": args.seed},
                "params": variant_params(params, entry["n_train"]),
                "num_rounds": args.num_rounds,
                "early_stopping": args.early_stopping,
            }
            task_file = workdir / "ref" / f"{vid}.task.json"
            task_file.write_text(json.dumps(task))
            tasks.append((task_file, workdir / "ref" / f"{vid}.result.json"))
    worker = str(BENCH_DIR / "reference_worker.py")

    done = iter(range(1, len(tasks) + 1))  # next() on a shared iterator is thread-safe enough

    def launch(paths: tuple[Path, Path]) -> None:
        subprocess.run([sys.executable, worker, str(paths[0]), str(paths[1])], check=True)
        finished = next(done)
        if finished % 10 == 0 or finished == len(tasks):
            note(f"reference: {finished}/{len(tasks)} variant processes finished")

    started, cpu_before = time.perf_counter(), children_cpu_s()
    with ThreadPoolExecutor(max_workers=args.cores) as pool:
        list(pool.map(launch, tasks))
    wall = time.perf_counter() - started
    cpu = children_cpu_s() - cpu_before
    results = [json.loads(p[1].read_text()) for p in tasks]
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    parts = {k: sum(r[k] for r in results) for k in ("import_s", "load_s", "bin_s", "train_s")}
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "cores": args.cores,
        "processes": len(tasks),
        "peak_rss_mb": max([r["peak_rss_mb"] for r in results], default=0.0),
        "peak_rss_mb_rusage_children": children,
        "seconds_by_part": parts,
        "variants": results + skipped,
    }


# --------------------------------------------------------------------------- alphafactory


def load_groups(args: argparse.Namespace, manifest: dict[str, Any]) -> Any:
    """Yield (group id, variant ids, GroupData) with the data loaded once, as the pipeline."""
    import polars as pl

    from alphafactory import io
    from alphafactory.data.splits import BEYOND_DATA, Periods, label_end_column, selection_split
    from alphafactory.models.lightgbm.family import DATASET_PARAMS
    from alphafactory.models.lightgbm.shard import build_group, variant_rows
    from alphafactory.targets.variants import Variant

    frame = io.read_parquet(manifest["features_file"])
    names = [c for c in frame.columns if c != "timestamp"]
    timeline = frame["timestamp"].cast(pl.Datetime("us")).to_numpy()
    values = frame.select(names).to_numpy().astype(np.float32, copy=False)
    del frame
    split = selection_split(Periods(np.datetime64(manifest["cutoff"], "us"), BEYOND_DATA))
    for gid, group in manifest["groups"].items():
        variants = [Variant.from_dict(e["variant"]) for e in group["variants"]]
        ends = [label_end_column(h) for h in sorted({v.horizon for v in variants})]
        targets = io.read_parquet(
            group["targets_file"], ["timestamp", *[v.variant_id for v in variants], *ends]
        )
        train_union, valid_union, per_variant = variant_rows(timeline, targets, variants, split)
        data = build_group(
            gid,
            values,
            names,
            train_union,
            valid_union,
            per_variant,
            {**DATASET_PARAMS, "seed": args.seed},
        )
        yield gid, [v.variant_id for v in variants], data


def run_phase(args: argparse.Namespace, workdir: Path) -> None:
    """One alphafactory phase, in its own process; writes phase_<name>.json."""
    from alphafactory.models.lightgbm.elimination import (
        HalvingSchedule,
        fit_group_halving,
        halve_groups,
    )
    from alphafactory.models.lightgbm.shard import fit_groups, fit_variant

    started = time.perf_counter()
    manifest = json.loads((workdir / "manifest.json").read_text())
    concurrent = max(1, args.cores // args.lgbm_threads)
    params = lgb_params(args, args.lgbm_threads)
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {"rungs": [], "rounds_trained": 0, "pure_train_s": 0.0}
    if args.phase == "full":
        # the pipeline's stage-1 executor: one pool streaming over the groups, the next group
        # binned while the previous one trains (alphafactory.stages.tune.stage1_results)
        fit = partial(
            fit_variant,
            params=params,
            num_rounds=args.num_rounds,
            early_stopping=args.early_stopping,
            min_rows=args.min_rows,
        )
        jobs = ((gid, group, vids) for gid, vids, group in load_groups(args, manifest))
        for gid, results in fit_groups(jobs, fit, concurrent):
            rows.extend({**r.summary(), "group_id": gid} for r in results or [])
    elif args.phase == "elimination":
        # the pipeline's stage-1 halving executor: rungs of consecutive groups on one pool
        halve = partial(
            fit_group_halving,
            params=params,
            num_rounds=args.num_rounds,
            early_stopping=args.early_stopping,
            min_rows=args.min_rows,
            schedule=HalvingSchedule(args.first_rounds, args.eta, args.min_survivors),
        )
        jobs = ((gid, group, vids) for gid, vids, group in load_groups(args, manifest))
        for gid, outcome in halve_groups(
            jobs, lambda group, vids, pool: halve(group, vids, pool=pool), concurrent
        ):
            assert outcome is not None
            rows.extend({**r.summary(), "group_id": gid} for r in outcome.results)
            extra["rungs"].append({"group_id": gid, "rungs": [vars(r) for r in outcome.rungs]})
            extra["rounds_trained"] += outcome.rounds_trained
    else:
        for gid, vids, group in load_groups(args, manifest):
            rows.extend(pure_trains(args, gid, vids, group, params, concurrent))
    wall = time.perf_counter() - started
    if args.phase == "pure":
        extra["pure_train_s"] = sum(r.get("train_s", 0.0) for r in rows)
    out = {
        "phase": args.phase,
        "inner_wall_s": wall,
        "concurrent_fits": concurrent,
        "lgbm_threads": args.lgbm_threads,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "variants": rows,
        **extra,
    }
    (workdir / f"phase_{args.phase}.json").write_text(json.dumps(out))


def pure_trains(
    args: argparse.Namespace,
    gid: str,
    vids: Sequence[str],
    group: Any,
    params: dict[str, Any],
    concurrent: int,
) -> list[dict[str, Any]]:
    """Time lgb.train alone on datasets built beforehand (same params, threads, concurrency)."""
    import lightgbm as lgb

    from alphafactory.metrics import average_precision
    from alphafactory.models.lightgbm.shard import variant_params

    eligible = []
    for vid in vids:
        rows = group.rows[vid]
        if (
            len(rows.train_index) >= args.min_rows
            and len(rows.valid_index) >= max(10, args.min_rows // 5)
            and len(np.unique(rows.train_label)) >= 2
            and len(np.unique(rows.valid_label)) >= 2
        ):
            eligible.append(vid)
    prebuilt = {vid: group.datasets(vid) for vid in eligible}

    def one(vid: str) -> dict[str, Any]:
        train, valid = prebuilt[vid]
        rows = group.rows[vid]
        full = variant_params(params, len(rows.train_index))
        started = time.perf_counter()
        booster = lgb.train(
            full,
            train,
            num_boost_round=args.num_rounds,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(args.early_stopping, verbose=False)],
        )
        seconds = time.perf_counter() - started
        probabilities = booster.predict(
            group.valid_matrix[rows.valid_index], num_iteration=booster.best_iteration
        )
        return {
            "variant_id": vid,
            "group_id": gid,
            "status": "ok",
            "train_s": seconds,
            "best_iteration": int(booster.best_iteration),
            "average_precision": average_precision(rows.valid_label, np.asarray(probabilities)),
        }

    with ThreadPoolExecutor(max_workers=concurrent) as pool:
        return list(pool.map(one, eligible))


def spawn_phase(args: argparse.Namespace, phase: str, workdir: Path, argv: list[str]) -> dict:
    started, cpu_before = time.perf_counter(), children_cpu_s()
    command = [sys.executable, str(Path(__file__).resolve()), *argv]
    command += ["--workdir", str(workdir), "--phase", phase]
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started
    result: dict[str, Any] = json.loads((workdir / f"phase_{phase}.json").read_text())
    result["wall_s"] = wall
    result["cpu_s"] = children_cpu_s() - cpu_before
    result["cores"] = args.cores
    return result


# --------------------------------------------------------------------------- comparison


def winners(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    from alphafactory.stages.tune import pick_winners

    return pick_winners(list(rows))


def compare(
    candidate: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Per-variant |ΔAP| over variants ok in both, and group-winner agreement."""
    base = {r["variant_id"]: r for r in baseline if r["status"] == "ok"}
    diffs = [
        abs(r["average_precision"] - base[r["variant_id"]]["average_precision"])
        for r in candidate
        if r["status"] == "ok" and r["variant_id"] in base
    ]
    won, base_won = winners(candidate), winners(baseline)
    groups = sorted(set(won) | set(base_won))
    agree = [
        g
        for g in groups
        if g in won and g in base_won and won[g]["variant_id"] == base_won[g]["variant_id"]
    ]
    differing = []
    for g in groups:
        if g in agree:
            continue
        mine = won.get(g, {}).get("variant_id")
        theirs = base_won.get(g, {}).get("variant_id")
        # Both winners' APs as the baseline measured them.
        gap = (
            base_won[g]["average_precision"] - base[mine]["average_precision"]
            if mine in base and g in base_won
            else math.nan
        )
        differing.append({"group_id": g, "winner": mine, "baseline_winner": theirs, "ap_gap": gap})
    return {
        "compared_variants": len(diffs),
        "median_abs_ap_diff": statistics.median(diffs) if diffs else math.nan,
        "max_abs_ap_diff": max(diffs) if diffs else math.nan,
        "groups": len(groups),
        "winners_agree": len(agree),
        "winner_agreement": len(agree) / len(groups) if groups else math.nan,
        "differing_winners": differing,
    }


def machine() -> dict[str, Any]:
    import lightgbm

    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = math.nan
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": round(ram_gb, 1),
        "lightgbm": lightgbm.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
    }


def note(message: str) -> None:
    """Progress on stderr (the report goes to stdout and bench/results)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def per_core_hour(n_variants: int, wall_s: float, cores: int) -> float:
    return n_variants / (wall_s * cores / 3600.0)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    if args.phase is not None:
        run_phase(args, args.workdir)
        return {}
    passthrough = list(raw)  # phases re-parse the same flags
    started = time.perf_counter()
    info = machine()
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="af-bench-")) if own_workdir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        manifest = prepare(args, workdir)
        (workdir / "manifest.json").write_text(json.dumps(manifest))
        prepare_s = time.perf_counter() - t0
        note(f"prepared the data set in {prepare_s:.0f} s; reference phase starts")
        reference = run_reference(args, manifest, workdir)
        note(f"reference: {reference['wall_s']:.0f} s; full phase starts")
        full = spawn_phase(args, "full", workdir, passthrough)
        note(f"full: {full['wall_s']:.0f} s; pure lgb.train phase starts")
        pure = spawn_phase(args, "pure", workdir, passthrough)
        note(f"pure: {pure['wall_s']:.0f} s; elimination phase starts")
        elimination = spawn_phase(args, "elimination", workdir, passthrough)
        note(f"elimination: {elimination['wall_s']:.0f} s")
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    n_variants = sum(len(g["variants"]) for g in manifest["groups"].values())
    rates = {
        name: per_core_hour(n_variants, phase["wall_s"], args.cores)
        for name, phase in (("reference", reference), ("full", full), ("elimination", elimination))
    }
    cpu_rates = {
        name: n_variants / (phase["cpu_s"] / 3600.0)
        for name, phase in (("reference", reference), ("full", full), ("elimination", elimination))
    }
    cores_used = full["concurrent_fits"] * full["lgbm_threads"]
    pure_core_s = pure["pure_train_s"] * pure["lgbm_threads"]
    overhead = full["wall_s"] * cores_used / pure_core_s if pure_core_s > 0 else math.nan
    overhead_in_process = (
        full["inner_wall_s"] * cores_used / pure_core_s if pure_core_s > 0 else math.nan
    )
    full_vs_ref = compare(full["variants"], reference["variants"])
    elim_vs_full = compare(elimination["variants"], full["variants"])
    pure_vs_full = compare(pure["variants"], full["variants"])
    full_rounds = sum(r["best_iteration"] for r in full["variants"] if r["status"] == "ok")
    report: dict[str, Any] = {
        "benchmark": "variant_throughput",
        "machine": {**info, "load_average_at_end": list(os.getloadavg())},
        "shape": {
            "rows": manifest["matrix_shape"][0],
            "features": manifest["matrix_shape"][1],
            "nan_share": args.nan_share,
            "symbols": args.symbols,
            "groups": len(manifest["groups"]),
            "variants": n_variants,
            "variants_per_group": n_variants // max(1, len(manifest["groups"])),
            "eligible_variants": sum(
                e["eligible"] for g in manifest["groups"].values() for e in g["variants"]
            ),
            "grid": {
                "windows": args.windows,
                "swing_types": args.swing_types,
                "std_thresholds": args.std_thresholds,
                "move_thresholds": args.move_thresholds,
                "horizons": args.horizons,
            },
            "mean_train_rows": float(
                np.mean([e["n_train"] for g in manifest["groups"].values() for e in g["variants"]])
            ),
        },
        "settings": {
            "cores": args.cores,
            "reference_processes": args.cores,
            "reference_threads": 1,
            "lgbm_threads": args.lgbm_threads,
            "concurrent_fits": full["concurrent_fits"],
            "num_rounds": args.num_rounds,
            "early_stopping": args.early_stopping,
            "learning_rate": args.learning_rate,
            "num_leaves": args.num_leaves,
            "max_depth": args.max_depth,
            "elimination": {
                "first_rounds": args.first_rounds,
                "eta": args.eta,
                "min_survivors": args.min_survivors,
            },
        },
        "wall_s": {
            "prepare": prepare_s,
            "reference": reference["wall_s"],
            "full": full["wall_s"],
            "pure": pure["wall_s"],
            "elimination": elimination["wall_s"],
            "total": time.perf_counter() - started,
        },
        "variants_per_core_hour": rates,
        "variants_per_cpu_hour": cpu_rates,
        "cpu_s": {
            "reference": reference["cpu_s"],
            "full": full["cpu_s"],
            "pure": pure["cpu_s"],
            "elimination": elimination["cpu_s"],
        },
        "full_ratio_cpu": cpu_rates["full"] / cpu_rates["reference"],
        "elimination_ratio_cpu": cpu_rates["elimination"] / cpu_rates["reference"],
        "full_ratio": rates["full"] / rates["reference"],
        "elimination_ratio": rates["elimination"] / rates["reference"],
        "elimination_vs_full_ratio": rates["elimination"] / rates["full"],
        "overhead_ratio": overhead,
        "overhead_ratio_in_process": overhead_in_process,
        "pure_train_core_s": pure_core_s,
        "reference_core_s_by_part": reference["seconds_by_part"],
        "peak_rss_mb": {
            "reference_max_worker": reference["peak_rss_mb"],
            "reference_rusage_children": reference["peak_rss_mb_rusage_children"],
            "full": full["peak_rss_mb"],
            "elimination": elimination["peak_rss_mb"],
            "pure": pure["peak_rss_mb"],
        },
        "equivalence": {
            "full_vs_reference": full_vs_ref,
            "elimination_vs_full": elim_vs_full,
            "pure_vs_full": pure_vs_full,
        },
        "boosting_rounds": {
            "full_best_iterations": full_rounds,
            "elimination_rounds_trained": elimination["rounds_trained"],
        },
        "elimination_rungs": elimination["rungs"],
    }
    report["targets"] = {
        "full_ratio_ge_1.5": report["full_ratio"] >= 1.5,
        "overhead_ratio_le_1.10": overhead <= 1.10,
        "full_winner_agreement_ge_0.9": full_vs_ref["winner_agreement"] >= 0.9,
        "full_median_abs_ap_diff_le_0.005": full_vs_ref["median_abs_ap_diff"] <= 0.005,
        "elimination_ratio_ge_4": report["elimination_ratio"] >= 4.0,
        "elimination_winner_agreement_ge_0.9": elim_vs_full["winner_agreement"] >= 0.9,
        "elimination_differing_winners_within_0.01": all(
            d["ap_gap"] <= 0.01 for d in elim_vs_full["differing_winners"]
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "variant_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "variant_throughput.md").write_text(markdown(report))
    print(markdown(report))
    return report


def markdown(r: dict[str, Any]) -> str:
    m, s, w = r["machine"], r["shape"], r["wall_s"]
    fr, ef = r["equivalence"]["full_vs_reference"], r["equivalence"]["elimination_vs_full"]
    rate, rss = r["variants_per_core_hour"], r["peak_rss_mb"]
    lines = [
        "# Variant-training throughput",
        "",
        f"Machine: {m['cores']} cores ({m['cpu_model']}), {m['ram_gb']} GB RAM, "
        f"LightGBM {m['lightgbm']}, Python {m['python']}; load average at start "
        f"{m['load_average_at_start'][0]:.2f}, at end {m['load_average_at_end'][0]:.2f}.",
        "",
        f"Shape: {s['rows']} rows × {s['features']} float32 features ({s['nan_share']:.0%} NaN), "
        f"{s['variants']} variants in {s['groups']} groups ({s['eligible_variants']} eligible), "
        f"mean {s['mean_train_rows']:.0f} training rows per variant; "
        f"{r['settings']['cores']} cores, LightGBM threads {r['settings']['lgbm_threads']} × "
        f"{r['settings']['concurrent_fits']} concurrent fits.",
        "",
        "| mode | wall s | variants / core-hour | vs reference | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
        f"| reference (process per variant) | {w['reference']:.1f} | {rate['reference']:.0f} "
        f"| 1.00× | {rss['reference_max_worker']:.0f} (max worker) |",
        f"| alphafactory full | {w['full']:.1f} | {rate['full']:.0f} | {r['full_ratio']:.2f}× "
        f"| {rss['full']:.0f} |",
        f"| alphafactory elimination | {w['elimination']:.1f} | {rate['elimination']:.0f} "
        f"| {r['elimination_ratio']:.2f}× | {rss['elimination']:.0f} |",
        f"| pure lgb.train (floor) | {w['pure']:.1f} | | | {rss['pure']:.0f} |",
        "",
        f"CPU-time view (user+sys seconds of the phase's processes, robust to other users' "
        f"load): reference {r['cpu_s']['reference']:.0f} s, full {r['cpu_s']['full']:.0f} s, "
        f"elimination {r['cpu_s']['elimination']:.0f} s; full ratio {r['full_ratio_cpu']:.2f}×, "
        f"elimination ratio {r['elimination_ratio_cpu']:.2f}×.",
        "",
        f"Overhead ratio (full wall × cores ÷ pure lgb.train core-seconds): "
        f"{r['overhead_ratio']:.3f} (process wall incl. interpreter start and imports); "
        f"{r['overhead_ratio_in_process']:.3f} in-process (data load, binning and fits).",
        "",
        "| equivalence | median abs ΔAP | max abs ΔAP | winners agreeing |",
        "|---|---:|---:|---:|",
        f"| full vs reference | {fr['median_abs_ap_diff']:.4f} | {fr['max_abs_ap_diff']:.4f} "
        f"| {fr['winners_agree']}/{fr['groups']} |",
        f"| elimination vs full (finished variants) | {ef['median_abs_ap_diff']:.4f} "
        f"| {ef['max_abs_ap_diff']:.4f} | {ef['winners_agree']}/{ef['groups']} |",
        "",
        "Targets: "
        + ", ".join(f"{k} {'PASS' if v else 'MISS'}" for k, v in r["targets"].items())
        + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
