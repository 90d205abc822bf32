"""Predicted quantiles of the forward move → probabilities of neither / breakout / reversion.

For one event the models give quantiles q_1..q_m of the move at levels tau_1 < ... < tau_m.
They are sorted first (separately fitted quantile models can cross; sorting gives the
monotone rearrangement). The predictive CDF F(x) = P(move <= x) is then

* linear between neighbouring points (q_i, tau_i) and (q_i+1, tau_i+1);
* flat beyond the outer levels: F = 0 below q_1 and F = 1 from q_m on. The tail mass below
  tau_1 sits at q_1 and the mass above tau_m at q_m, so no class is pushed past a barrier
  the predicted quantiles do not reach; the price is that a class whose barrier lies beyond
  the outermost quantile gets probability exactly 0 (choose outer levels such as 0.05 / 0.95
  when that matters). Tied quantiles are point masses.

With the barriers at +1 (breakout) and -1 (reversion) in these units:

    P(reversion) = P(move <= -1) = F(-1)
    P(breakout)  = P(move >= +1) = 1 - F(1-)      (F(1-) = P(move < 1), the left limit)
    P(neither)   = F(1-) - F(-1)                  (the rest: -1 < move < +1)

Example: levels (0.1, 0.5, 0.9) and quantiles (-2, 0, 2) give F(-1) = 0.1 + 0.4 * 1/2 = 0.3
and F(1-) = 0.5 + 0.4 * 1/2 = 0.7, so (neither, breakout, reversion) = (0.4, 0.3, 0.3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Where the barriers are in the move's units (`Sample.aux["move"]`).
BARRIER = 1.0


def cdf(quantiles: np.ndarray, levels: np.ndarray, x: float, *, inclusive: bool) -> np.ndarray:
    """Per row, P(move <= x) (`inclusive`) or P(move < x) under the piecewise-linear CDF with
    flat tails through sorted `quantiles` (rows × m) at ascending `levels` (m,)."""
    m = quantiles.shape[1]
    below = (quantiles <= x) if inclusive else (quantiles < x)
    k = below.sum(axis=1)  # quantiles at (or strictly below) x
    lo = np.clip(k - 1, 0, m - 2)
    rows = np.arange(len(quantiles))
    q_lo, q_hi = quantiles[rows, lo], quantiles[rows, lo + 1]
    width = q_hi - q_lo
    # inside the range q_lo <= x < q_hi (inclusive) or q_lo < x <= q_hi, so width > 0
    inner = (k > 0) & (k < m)
    fraction = np.divide(x - q_lo, width, out=np.zeros_like(width), where=inner & (width > 0))
    value = levels[lo] + (levels[lo + 1] - levels[lo]) * fraction
    return np.where(k == 0, 0.0, np.where(k == m, 1.0, value))


def class_probabilities(
    quantiles: np.ndarray, levels: Sequence[float], barrier: float = BARRIER
) -> np.ndarray:
    """(neither, breakout, reversion) per row from predicted move quantiles (rows × levels)."""
    taus = np.asarray(levels, dtype=np.float64)
    q = np.sort(np.asarray(quantiles, dtype=np.float64), axis=1)
    if q.ndim != 2 or q.shape[1] != len(taus) or len(taus) < 2:
        raise ValueError(f"quantiles of shape {q.shape} do not match {len(taus)} levels (>= 2)")
    reversion = cdf(q, taus, -barrier, inclusive=True)
    below_breakout = cdf(q, taus, barrier, inclusive=False)
    breakout = 1.0 - below_breakout
    neither = np.clip(below_breakout - reversion, 0.0, None)
    return np.column_stack([neither, breakout, reversion])
