"""The Transformer family: a self-attention encoder over each event's window of matrix rows."""

from __future__ import annotations

from alphafactory.models.transformer.family import (
    TransformerFamily,
    TransformerModel,
    TransformerParams,
)

__all__ = ["TransformerFamily", "TransformerModel", "TransformerParams"]
