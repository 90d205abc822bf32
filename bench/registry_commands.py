"""How long the registry commands take (issue #18): `alphafactory models list` and
`alphafactory models info <id>`, each run N times as a subprocess of the installed console
script, exactly as a user types them, against a reference in the same run: the same commands
with `ALPHAFACTORY_REGISTRY_READS=mlflow`, which reads the SQLite registry through the MLflow
client (the path every command took before). Runs alternate (new, reference, new, …) so a
change of machine load hits both alike; one warm-up run of each is discarded.

    .venv/bin/python bench/registry_commands.py                   # results in bench/results/
    .venv/bin/python bench/registry_commands.py --runs-dir runs    # an existing runs folder
    .venv/bin/python bench/registry_commands.py --repeats 3 --out /tmp   # a quick look

Without `--runs-dir` it registers `--groups` × `--versions` versions (real tags, 20
metrics, 20 params, a 300-feature list, a champion per group) into a fresh registry in a
temporary folder through `ModelRegistry.register`. Reports the median, min and max wall
seconds of each command and path, and reference ÷ new; the target is a median under 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

TARGET_S = 3.0
READS_ENV = "ALPHAFACTORY_REGISTRY_READS"  # alphafactory.registry.sqlite_store.READS_ENV
PATHS = ("sql", "mlflow")


def build_registry(runs_dir: Path, groups: int, versions: int) -> None:
    """A registry under `runs_dir/registry` with groups × versions registered versions."""
    from alphafactory.registry import (
        CHAMPION,
        Lineage,
        ModelRegistry,
        SemVer,
        registered_model_name,
    )

    registry = ModelRegistry(root=runs_dir / "registry")
    features = tuple(f"SYM__family__feature_{i}" for i in range(300))
    model_file = runs_dir / "model.zip"
    for group in range(groups):
        gid = f"S{group % 4}_w{3 + group}_high"
        name = registered_model_name(gid)
        for version in range(versions):
            model_file.write_bytes(f"model {gid} {version}".encode())
            registry.register(
                name,
                model_file,
                model_type="lightgbm",
                metrics={"ap": 0.4 + 0.01 * version, **{f"m{i}": i / 7 for i in range(19)}},
                params={f"p{i}": i for i in range(20)},
                lineage=Lineage("d" * 64, features, pipeline_run_id=f"run-{version}"),
                grade="B",
                version=SemVer(1, 0, version),
                symbol=f"S{group % 4}",
                group=gid,
            )
        registry.set_alias(name, versions, CHAMPION)


def timed(command: list[str], reads: str) -> float:
    """Wall seconds of one run of `command` reading the registry the `reads` way."""
    env = {**os.environ, READS_ENV: reads, "COLUMNS": "200"}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-500:]}")
    return seconds


def import_mlflow_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mlflow"], check=True)
    return time.perf_counter() - started


def summary(runs: list[float]) -> dict[str, float | list[float]]:
    return {
        "median_s": round(statistics.median(runs), 3),
        "min_s": round(min(runs), 3),
        "max_s": round(max(runs), 3),
        "runs_s": [round(r, 3) for r in runs],
    }


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True, text=True)
    return done.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def markdown(result: dict) -> str:
    lines = [
        "# Registry commands: direct SQLite reads vs reads through MLflow",
        "",
        f"Run of {result['date']} (commit {result['commit']}), {result['machine']}; load "
        f"average {result['load_before']} before, {result['load_after']} after; "
        f"{result['registry']}. Each figure: {result['repeats']} runs of the console script "
        "as a subprocess (wall seconds, interpreter start included), alternating with the "
        f"reference; `python -c 'import mlflow'` alone took {result['import_mlflow_s']} s.",
        "",
        "| command | new: median (min–max) s | reference (MLflow client): median (min–max) s "
        "| reference ÷ new | under 3 s |",
        "|---|---:|---:|---:|---|",
    ]
    for row in result["commands"].values():
        new, ref = row["sql"], row["mlflow"]
        lines.append(
            f"| `{row['command']}` | {new['median_s']} ({new['min_s']}–{new['max_s']}) | "
            f"{ref['median_s']} ({ref['min_s']}–{ref['max_s']}) | **{row['ratio']}×** | "
            f"{'yes' if new['median_s'] < TARGET_S else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", type=Path, help="an existing runs folder (its registry)")
    parser.add_argument("--groups", type=int, default=24)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    cli = str(Path(sys.executable).with_name("alphafactory"))
    with tempfile.TemporaryDirectory(prefix="af-registry-bench-") as scratch:
        runs_dir = args.runs_dir.resolve() if args.runs_dir else Path(scratch) / "runs"
        if args.runs_dir is None:
            started = time.perf_counter()
            build_registry(runs_dir, args.groups, args.versions)
            print(f"registry built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        from alphafactory.registry import ModelRegistry

        models = ModelRegistry(root=runs_dir / "registry").list_models()
        if not models:
            raise SystemExit(f"{runs_dir}/registry holds no models")
        where = ["--env", "local-dev", "--runs-dir", str(runs_dir)]
        commands = {
            "list": [cli, "models", "list", *where],
            "info": [cli, "models", "info", models[0].model_id, *where],
        }
        load_before = round(os.getloadavg()[0], 2)
        times: dict[str, dict[str, list[float]]] = {c: {p: [] for p in PATHS} for c in commands}
        for repeat in range(args.repeats + 1):
            for name, command in commands.items():
                for reads in PATHS:
                    seconds = timed(command, reads)
                    if repeat:  # the first round warms the file cache
                        times[name][reads].append(seconds)
            print(f"round {repeat}/{args.repeats} done", file=sys.stderr)
        load_after = round(os.getloadavg()[0], 2)
        mlflow_import = round(statistics.median(import_mlflow_seconds() for _ in range(3)), 2)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "load_before": load_before,
        "load_after": load_after,
        "registry": (
            f"{len(models)} versions of {len({m.name for m in models})} registered models"
            + (f" in {args.runs_dir}" if args.runs_dir else " (built by the benchmark)")
        ),
        "repeats": args.repeats,
        "import_mlflow_s": mlflow_import,
        "target_s": TARGET_S,
        "commands": {},
    }
    for name, command in commands.items():
        new, ref = summary(times[name]["sql"]), summary(times[name]["mlflow"])
        shown = " ".join(["alphafactory", *command[1:3], *(["<id>"] if name == "info" else [])])
        result["commands"][name] = {
            "command": shown,
            "sql": new,
            "mlflow": ref,
            "ratio": round(float(ref["median_s"]) / float(new["median_s"]), 2),
        }
    result["meets_target"] = all(
        float(row["sql"]["median_s"]) < TARGET_S for row in result["commands"].values()
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "registry_commands.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "registry_commands.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
