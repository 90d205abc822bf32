"""The CNN1D family: causal 1-D convolutions over each event's window of matrix rows."""

from __future__ import annotations

from alphafactory.models.cnn1d.family import CNN1DFamily, CNN1DModel, CNN1DParams

__all__ = ["CNN1DFamily", "CNN1DModel", "CNN1DParams"]
