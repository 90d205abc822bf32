"""The torch training loop of the neural families (imported only once torch is known to be
installed: `neural.family` imports it inside `fit` and `load`).

A fit is AdamW on the sample-weighted cross-entropy of the three classes, mini-batches in a
seeded random order, the gradient norm clipped at `clip_norm` (0: not clipped). One epoch is
one pass over the training rows; `budget.rounds` caps the epochs. After each epoch the
validation rows' weighted log loss is measured, the best epoch's weights are kept and
training stops after `budget.early_stopping` epochs without improvement; `budget.seconds`
is checked after every mini-batch and ends the epoch in progress, which is scored like a
full one. Only the validation rows decide when to stop.

Determinism: the seed (`budget.seed`) fixes the initial weights, the dropout masks and the
batch order, drawn from a forked random state (the caller's is left as it was); on the CPU
torch's deterministic algorithms are switched on and the thread count is the budget's, so
the same rows, parameters and budget give the same weights.

Devices: `cuda` is used when asked for and available, else the CPU with a log line. On the
GPU an out-of-memory error halves the batch down to `MIN_BATCH`, then training moves to the
CPU at the batch size asked for; any other GPU failure moves to the CPU at once. The device
and batch size actually used are returned with the weights.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from alphafactory.errors import ModelError, first_line
from alphafactory.models._base import FitBudget

log = logging.getLogger(__name__)

#: An out-of-memory error on the GPU halves the batch size down to this, then moves to the CPU.
MIN_BATCH = 16
#: Rows per forward pass when scoring (validation loss, predictions).
SCORE_CHUNK = 4096
CPU, CUDA = "cpu", "cuda"

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """The optimiser's knobs and the device asked for."""

    learning_rate: float
    weight_decay: float
    batch_size: int
    clip_norm: float
    device: str = CPU


@dataclass(frozen=True)
class Rows:
    """Network inputs (rows × …, float32), class labels and row weights of one sample."""

    inputs: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None = None


@dataclass
class Trained:
    """The best epoch's weights (on the CPU) and what the training did."""

    state: dict[str, torch.Tensor]
    best_epoch: int
    epochs: int
    valid_loss: float | None
    epoch_losses: list[float | None] = field(default_factory=list)
    device: str = CPU
    batch_size: int = 0


@contextmanager
def torch_threads(threads: int, deterministic: bool = True) -> Iterator[None]:
    """torch's intra-op threads and deterministic-algorithms switch for the block, restored
    afterwards (both are process-wide settings)."""
    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(max(1, int(threads)))
    torch.use_deterministic_algorithms(deterministic)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_deterministic)


def choose_device(asked: str, what: str) -> str:
    """`cuda` when asked for and available, else `cpu` (with a log line when CUDA was asked)."""
    if asked == CUDA and not torch.cuda.is_available():
        log.warning("%s: CUDA asked for but not available; training on the CPU", what)
        return CPU
    return asked


def with_fallback(
    attempt: Callable[[str, int], T], device: str, batch_size: int, what: str
) -> tuple[T, str, int]:
    """`attempt(device, batch_size)`, retried on GPU failures (see the module's notes);
    returns its result with the device and batch size that succeeded."""
    batch = batch_size
    while True:
        try:
            return attempt(device, batch), device, batch
        except torch.OutOfMemoryError as exc:
            if device == CPU:
                raise ModelError(
                    f"{what}: out of memory on the CPU at batch size {batch}; lower batch_size"
                ) from None
            if device == CUDA:
                torch.cuda.empty_cache()
            if batch // 2 >= MIN_BATCH:
                log.warning(
                    "%s: GPU out of memory at batch size %d (%s); retrying with %d",
                    what, batch, first_line(exc), batch // 2,
                )  # fmt: skip
                batch //= 2
            else:
                log.warning(
                    "%s: GPU out of memory down to batch size %d; falling back to the CPU at "
                    "batch size %d", what, batch, batch_size,
                )  # fmt: skip
                device, batch = CPU, batch_size
        except RuntimeError as exc:
            if device == CPU:
                raise ModelError(f"{what}: training failed: {first_line(exc)}") from None
            log.warning(
                "%s: GPU training failed (%s); falling back to the CPU", what, first_line(exc)
            )
            device, batch = CPU, batch_size


def train_network(
    build: Callable[[], nn.Module],
    train: Rows,
    valid: Rows,
    settings: Settings,
    budget: FitBudget,
    *,
    started: float,
    what: str,
) -> Trained:
    """Train the network `build()` makes on `train`, early-stopping on `valid` (the module's
    notes); `started` is when the fit's time budget began."""
    device = choose_device(settings.device, what)

    def attempt(on: str, batch: int) -> Trained:
        with (
            torch_threads(budget.threads, deterministic=on == CPU),
            torch.random.fork_rng(devices=[] if on == CPU else None),
        ):
            return _train_on(build, train, valid, settings, budget, started, on, batch)

    trained, used, batch = with_fallback(attempt, device, settings.batch_size, what)
    trained.device, trained.batch_size = used, batch
    return trained


def _tensors(rows: Rows, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    weights = np.ones(len(rows.labels)) if rows.weights is None else rows.weights
    return (
        torch.from_numpy(np.ascontiguousarray(rows.inputs, dtype=np.float32)).to(device),
        torch.from_numpy(np.asarray(rows.labels, dtype=np.int64)).to(device),
        torch.from_numpy(np.asarray(weights, dtype=np.float32)).to(device),
    )


def _weighted_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    losses = functional.cross_entropy(logits, labels, reduction="none")
    return (losses * weights).sum() / weights.sum()


def _cpu_state(network: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().to(CPU, copy=True) for name, value in network.state_dict().items()}


def logits_of(network: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The network's logits for `inputs`, in chunks, without gradients (eval mode)."""
    network.eval()
    with torch.no_grad():
        parts = [network(inputs[start : start + SCORE_CHUNK])
                 for start in range(0, len(inputs), SCORE_CHUNK)]  # fmt: skip
    return torch.cat(parts) if parts else torch.zeros((0, 3))


def _train_on(
    build: Callable[[], nn.Module],
    train: Rows,
    valid: Rows,
    settings: Settings,
    budget: FitBudget,
    started: float,
    device: str,
    batch: int,
) -> Trained:
    torch.manual_seed(budget.seed)
    network = build().to(device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    order_seed = torch.Generator().manual_seed(budget.seed)
    inputs, labels, weights = _tensors(train, device)
    valid_inputs, valid_labels, valid_weights = _tensors(valid, device)
    best_loss, best_epoch, best_state = math.inf, 0, _cpu_state(network)
    losses: list[float | None] = []
    epochs, out_of_time = 0, False
    while epochs < max(1, budget.rounds) and not out_of_time:
        network.train()
        order = torch.randperm(len(labels), generator=order_seed).to(device)
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = _weighted_loss(network(inputs[index]), labels[index], weights[index])
            loss.backward()
            if settings.clip_norm > 0:
                nn.utils.clip_grad_norm_(network.parameters(), settings.clip_norm)
            optimizer.step()
            if budget.seconds is not None and time.perf_counter() - started > budget.seconds:
                out_of_time = True
                break
        epochs += 1
        scored = float(
            _weighted_loss(logits_of(network, valid_inputs), valid_labels, valid_weights)
        )
        losses.append(scored if math.isfinite(scored) else None)
        if scored < best_loss:
            best_loss, best_epoch, best_state = scored, epochs, _cpu_state(network)
        elif epochs - best_epoch >= budget.early_stopping:
            break
    if best_epoch == 0:  # only when the validation loss was never finite
        best_epoch, best_state = epochs, _cpu_state(network)
    valid_loss = best_loss if math.isfinite(best_loss) else None
    return Trained(best_state, best_epoch, epochs, valid_loss, losses, device, batch)
