"""The neural families' training loop: early stopping on the validation rows, seeded
determinism that leaves the caller's torch state alone, the device choice and the GPU
fallback policy (an injected out-of-memory error: no GPU here), and the one-line error
when torch is missing."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
import torch

from alphafactory.errors import ModelError
from alphafactory.models import FitBudget, family, preset_params
from alphafactory.models.neural.training import MIN_BATCH, with_fallback
from tests.contract.conftest import make_sample

BUDGET = FitBudget(rounds=200, early_stopping=3, threads=1, seed=5)


@pytest.fixture(scope="module")
def samples() -> tuple:
    return make_sample(400, seed=21), make_sample(200, seed=22, start="2024-03-01")


def test_training_stops_on_the_validation_loss_and_keeps_its_best_epoch(samples: tuple) -> None:
    train, valid = samples
    params = preset_params("mlp", "aggressive", {"learning_rate": 0.05})  # overfits quickly
    model = family("mlp").fit(train, valid, params, BUDGET)
    losses = model.record["epoch_losses"]
    best = int(np.argmin(losses)) + 1
    assert model.best_iteration == model.record["best_epoch"] == best
    assert model.record["epochs"] == len(losses) == best + BUDGET.early_stopping < BUDGET.rounds
    assert model.record["valid_log_loss"] == pytest.approx(min(losses))
    # the kept weights are the best epoch's: their validation log loss is that epoch's
    probabilities = model.predict_proba(valid.features)
    picked = probabilities[np.arange(len(valid)), valid.labels]
    assert float(-np.log(picked).mean()) == pytest.approx(min(losses), rel=1e-5)


def test_same_seed_same_bytes_other_seed_other_weights_and_torch_state_kept(
    samples: tuple,
) -> None:
    train, valid = samples
    params = preset_params("cnn1d", "conservative")
    budget = FitBudget(rounds=4, early_stopping=4, threads=1, seed=5)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    first = family("cnn1d").fit(train, valid, params, budget)
    assert torch.equal(torch.rand(3), expected_draw)  # the caller's random stream is untouched
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()
    second = family("cnn1d").fit(train, valid, params, budget)
    other = family("cnn1d").fit(train, valid, params, FitBudget(4, 4, threads=1, seed=6))
    assert first.files() == second.files()
    assert first.files()["weights.safetensors"] != other.files()["weights.safetensors"]


def test_cuda_asked_without_a_gpu_trains_on_the_cpu_and_says_so(
    samples: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    assert not torch.cuda.is_available()  # this machine has no GPU; on one, this test is moot
    train, valid = samples
    params = preset_params("mlp", "conservative", {"device": "cuda"})
    with caplog.at_level(logging.WARNING):
        model = family("mlp").fit(train, valid, params, FitBudget(2, 2, threads=1, seed=1))
    assert model.record["device"] == "cpu" and model.record["batch_size"] == params["batch_size"]
    assert "mlp: CUDA asked for but not available; training on the CPU" in caplog.text


Failure = Callable[[str, int], Exception | None]


def _attempts(fails: Failure) -> tuple[list[tuple[str, int]], Callable[[str, int], str]]:
    """An attempt that records its (device, batch) calls and raises what `fails` returns."""
    calls: list[tuple[str, int]] = []

    def attempt(device: str, batch: int) -> str:
        calls.append((device, batch))
        error = fails(device, batch)
        if error is not None:
            raise error
        return "weights"

    return calls, attempt


def test_gpu_out_of_memory_halves_the_batch_until_it_fits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls, attempt = _attempts(
        lambda device, batch: torch.OutOfMemoryError("CUDA out of memory") if batch > 32 else None
    )
    with caplog.at_level(logging.WARNING):
        result = with_fallback(attempt, "cuda", 128, "lstm")
    assert result == ("weights", "cuda", 32)
    assert calls == [("cuda", 128), ("cuda", 64), ("cuda", 32)]
    assert "lstm: GPU out of memory at batch size 128 (CUDA out of memory); retrying with 64" in (
        caplog.text
    )


def test_gpu_out_of_memory_at_the_floor_then_falls_back_to_the_cpu(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls, attempt = _attempts(
        lambda device, batch: torch.OutOfMemoryError("oom") if device != "cpu" else None
    )
    with caplog.at_level(logging.WARNING):
        result = with_fallback(attempt, "cuda", 64, "mlp")
    assert result == ("weights", "cpu", 64)
    assert calls == [("cuda", 64), ("cuda", 32), ("cuda", MIN_BATCH), ("cpu", 64)]
    assert f"GPU out of memory down to batch size {MIN_BATCH}; falling back to the CPU" in (
        caplog.text
    )
    calls, attempt = _attempts(
        lambda device, batch: (
            RuntimeError("CUDA error: launch failure") if device != "cpu" else None
        )
    )
    with caplog.at_level(logging.WARNING):
        assert with_fallback(attempt, "cuda", 64, "mlp") == ("weights", "cpu", 64)
    assert calls == [("cuda", 64), ("cpu", 64)]
    assert "mlp: GPU training failed (CUDA error: launch failure); falling back to the CPU" in (
        caplog.text
    )


def test_cpu_failures_are_one_line_model_errors() -> None:
    _, attempt = _attempts(lambda device, batch: torch.OutOfMemoryError("no memory\ndetail"))
    with pytest.raises(ModelError, match=r"^mlp: out of memory on the CPU at batch size 64; "):
        with_fallback(attempt, "cpu", 64, "mlp")
    _, attempt = _attempts(lambda device, batch: RuntimeError("shape mismatch\nstack"))
    with pytest.raises(ModelError, match=r"^mlp: training failed: shape mismatch$"):
        with_fallback(attempt, "cpu", 64, "mlp")


def test_missing_torch_fails_in_one_line_naming_the_extra(
    samples: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, valid = samples
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    with pytest.raises(
        ModelError, match=r"^torch is not installed .*`pip install 'alphafactory\[torch\]'`$"
    ):
        family("lstm").fit(train, valid, preset_params("lstm"), BUDGET)


def test_the_registry_does_not_import_torch() -> None:
    """Runs that use no neural family never pay for importing torch."""
    code = "import sys, alphafactory.models as m; m.family('lstm'); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
