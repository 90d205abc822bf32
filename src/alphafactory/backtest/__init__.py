"""Walk-forward backtest: windows and refits, probabilities to trades, trading metrics and
population-aware scores (deflated Sharpe, probability of backtest overfitting)."""
