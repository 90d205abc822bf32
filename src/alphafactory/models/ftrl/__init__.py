"""The FTRL family: online multinomial logistic regression with FTRL-Proximal updates."""

from __future__ import annotations

from alphafactory.models.ftrl.family import FTRLFamily, FTRLModel, FTRLParams

__all__ = ["FTRLFamily", "FTRLModel", "FTRLParams"]
