"""Models for accounts tables (tokens, credentials, audit log)."""
