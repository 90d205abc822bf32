"""The throughput benchmark runs end to end on a tiny configuration (so it cannot rot)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_variant_throughput_tiny(tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [
        sys.executable,
        str(ROOT / "bench" / "variant_throughput.py"),
        "--bars", "1500",
        "--features", "8",
        "--symbols", "BTC",
        "--windows", "5",
        "--swing-types", "high",
        "--horizons", "6,24",
        "--num-rounds", "15",
        "--early-stopping", "5",
        "--first-rounds", "3",
        "--cores", "2",
        "--out", str(out),
        "--workdir", str(tmp_path / "work"),
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT, timeout=600)
    report = json.loads((out / "variant_throughput.json").read_text())
    assert (out / "variant_throughput.md").read_text().startswith("# Variant-training")
    for key in ("full_ratio", "elimination_ratio", "overhead_ratio"):
        assert math.isfinite(report[key]) and report[key] > 0, key
    assert report["shape"]["variants"] == 4 and report["shape"]["groups"] == 1
    for name in ("full_vs_reference", "elimination_vs_full", "pure_vs_full"):
        eq = report["equivalence"][name]
        assert eq["median_abs_ap_diff"] >= 0 and eq["max_abs_ap_diff"] >= 0
        assert 0 <= eq["winner_agreement"] <= 1
    # pure lgb.train on the executor's own datasets reproduces the executor's models
    assert report["equivalence"]["pure_vs_full"]["max_abs_ap_diff"] == 0
    assert report["equivalence"]["elimination_vs_full"]["max_abs_ap_diff"] == 0
    assert all(v > 0 for v in report["peak_rss_mb"].values())
    assert report["machine"]["cores"] >= 1 and report["machine"]["lightgbm"]
