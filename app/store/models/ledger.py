"""Models for market and ledger tables (orders, fills, positions, balances, snapshots)."""
