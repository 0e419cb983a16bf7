"""Models for trading and backtest additions."""
