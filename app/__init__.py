"""Tradewind: a self-hosted, multi-user trading-bot backend.

Importing any module of the project imports this package first, so it imports nothing: the
app factory is `app.factory.create_app`.
"""
