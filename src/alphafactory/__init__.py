"""alphafactory: mass-produce trading-signal models from one Kubeflow pipeline."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
