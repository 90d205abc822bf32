"""A network's weights as safetensors bytes, and back (imported once torch is installed).

safetensors holds named tensors and a JSON header only: reading it runs no code, unlike a
pickled `torch.save` file, which `torch.load` would execute. Every tensor is float32 and on
the CPU, whatever device trained it.
"""

from __future__ import annotations

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from alphafactory.errors import ModelError, first_line


def state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """The state dict as safetensors bytes (the same tensors always give the same bytes)."""
    return bytes(
        save({name: value.detach().to("cpu").contiguous() for name, value in state.items()})
    )


def read_state(payload: bytes, what: str) -> dict[str, torch.Tensor]:
    """The float32 tensors of a safetensors payload; anything else is refused."""
    try:
        state = load(bytes(payload))
    except (SafetensorError, ValueError, OverflowError, RuntimeError) as exc:
        raise ModelError(
            f"{what} is not a safetensors state dict ({first_line(exc, 'unreadable')}); "
            "retrain the model"
        ) from None
    wrong = sorted(name for name, value in state.items() if value.dtype != torch.float32)
    if wrong:
        raise ModelError(f"{what}: tensor {wrong[0]} is not float32; retrain the model")
    return state
