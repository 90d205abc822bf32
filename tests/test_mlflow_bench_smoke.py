"""The registry-commands benchmark runs end to end on a tiny registry (so it cannot rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_registry_commands_benchmark_tiny(tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [
        sys.executable, str(ROOT / "bench" / "registry_commands.py"),
        "--groups", "2", "--versions", "1", "--repeats", "1", "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT, timeout=600, capture_output=True)
    report = json.loads((out / "registry_commands.json").read_text())
    assert (out / "registry_commands.md").read_text().startswith("# Registry commands")
    assert report["registry"].startswith("2 versions of 2 registered models")
    assert set(report["commands"]) == {"list", "info"}
    for row in report["commands"].values():
        assert len(row["sql"]["runs_s"]) == len(row["mlflow"]["runs_s"]) == 1
        ratio = row["mlflow"]["median_s"] / row["sql"]["median_s"]
        assert row["ratio"] == pytest.approx(ratio, abs=0.01)
