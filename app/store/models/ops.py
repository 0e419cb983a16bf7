"""Models for operations tables."""
