"""Models for analysis results and watchlist."""
