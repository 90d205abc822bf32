"""The sources that need no network: the embedded synthetic generator and a user's file."""

from __future__ import annotations

from alphafactory.config.schema import DataConfig
from alphafactory.data.bars import load_bars
from alphafactory.data.sources._base import BarsOrigin, LoadedBars, SourceContext
from alphafactory.data.synthetic import generate_bars_with_truth


class SyntheticSource:
    """`data.source: synthetic`: seeded bars with the ground truth of a planted signal."""

    name = "synthetic"

    def load(self, data: DataConfig, context: SourceContext) -> LoadedBars:
        bars, truth = generate_bars_with_truth(
            symbols=data.symbols,
            n_bars=data.n_bars,
            frequency=data.frequency,
            seed=data.seed,
            planted=data.planted,
            windows=context.grid.windows,
            swing_types=context.grid.swing_types,
        )
        return LoadedBars(bars, BarsOrigin(self.name, data.label), truth)


class FileSource:
    """`data.source: file` (or `uri`): parquet or CSV bars on any fsspec URI."""

    name = "file"

    def load(self, data: DataConfig, context: SourceContext) -> LoadedBars:
        assert data.uri is not None, "DataConfig refuses a file source without data.uri"
        return LoadedBars(load_bars(data.uri), BarsOrigin(self.name, data.label))
