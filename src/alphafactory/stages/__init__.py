"""Pipeline stages as plain functions: (settings, run folder) -> files in the run folder + metrics.

Nothing here imports kfp; the KFP components in `components/` are thin wrappers around these.
"""

from __future__ import annotations

from alphafactory.stages.backtest import run_backtest_aggregate, run_backtest_shard
from alphafactory.stages.infer import run_infer
from alphafactory.stages.prepare import run_prepare
from alphafactory.stages.screen import run_screen_aggregate, run_screen_shard
from alphafactory.stages.search import run_search_shard, run_select_search
from alphafactory.stages.train import run_train_shard
from alphafactory.stages.tune import run_select_winners, run_tune_shard

__all__ = [
    "run_backtest_aggregate",
    "run_backtest_shard",
    "run_infer",
    "run_prepare",
    "run_screen_aggregate",
    "run_screen_shard",
    "run_search_shard",
    "run_select_search",
    "run_select_winners",
    "run_train_shard",
    "run_tune_shard",
]
