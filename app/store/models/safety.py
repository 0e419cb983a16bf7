"""Models for safety tables (alerts, incidents)."""
