"""A/B of the stage-1 shard executor between two code trees, on one machine, alternately.

    git worktree add /tmp/old <rev>   # or a clone checked out at <rev>
    .venv/bin/python bench/executor_ab.py /tmp/old/src src --rounds 2

Each round runs the same work under each tree (a subprocess with that tree's `src` first on
PYTHONPATH): 6 groups × 10 variants on a seeded 40,000 × 300 float32 matrix (10 % NaN),
binned once per group and fitted by `fit_groups` with 2 concurrent 1-thread fits, 300
rounds, early stopping 30. It prints one JSON line per run and the new/old wall ratio;
identical mean APs show both trees fitted the same models.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

WORK = r"""
import json, sys, time
from functools import partial
import numpy as np
try:
    from alphafactory.models.lightgbm.family import DATASET_PARAMS, fixed_params
    from alphafactory.models.lightgbm.shard import build_group, fit_groups, fit_variant
except ImportError:  # the tree before the model-family layer
    from alphafactory.models.lightgbm_shard import (
        DATASET_PARAMS, build_group, fit_groups, fit_variant, fixed_params)
rng = np.random.default_rng(7)
rows, cols = 40000, 300
X = rng.normal(size=(rows, cols)).astype(np.float32)
X[rng.random(X.shape) < 0.1] = np.nan
params = {**fixed_params(1, 7), "num_leaves": 31, "max_depth": 6, "learning_rate": 0.1}
def group(g):
    grng = np.random.default_rng(g)
    per = {}
    for v in range(10):
        idx = np.sort(grng.choice(rows, 6000, replace=False))
        score = np.nan_to_num(X[idx, v % 20]) + grng.normal(scale=1.0, size=len(idx))
        y = np.where(score > 0.7, 1, np.where(score < -0.7, 2, 0)).astype(np.int32)
        cut = int(len(idx) * 0.8)
        per[f"g{g}_v{v}"] = (idx[:cut], y[:cut], idx[cut:], y[cut:])
    train = np.unique(np.concatenate([p[0] for p in per.values()]))
    valid = np.unique(np.concatenate([p[2] for p in per.values()]))
    names = [f"f{i}" for i in range(cols)]
    return build_group(f"g{g}", X, names, train, valid, per, {**DATASET_PARAMS, "seed": 7})
fit = partial(fit_variant, params=params, num_rounds=300, early_stopping=30, min_rows=60)
started, cpu = time.perf_counter(), time.process_time()
jobs = ((f"g{g}", grp, list(grp.rows)) for g in range(6) for grp in [group(g)])
aps = [r.average_precision for _, results in fit_groups(jobs, fit, 2) for r in results]
print(json.dumps({"wall_s": round(time.perf_counter() - started, 1),
                  "cpu_s": round(time.process_time() - cpu, 1),
                  "mean_ap": round(float(np.mean(aps)), 6), "fits": len(aps)}))
"""


def run(src: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    done = subprocess.run(
        [sys.executable, "-c", WORK], env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_src")
    parser.add_argument("new_src")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(args.rounds):
        for name, src in (("old", args.old_src), ("new", args.new_src)):
            result = run(src)
            walls[name].append(result["wall_s"])
            print(json.dumps({"tree": name, **result}), flush=True)
    old, new = sum(walls["old"]) / args.rounds, sum(walls["new"]) / args.rounds
    print(f"mean wall: old {old:.1f} s, new {new:.1f} s, new/old {new / old:.3f}")


if __name__ == "__main__":
    main()
