"""Declarative analysis patterns: YAML pipelines of named steps, validated with line numbers
and hot-reloaded from the patterns folder (PATTERNS_DIR)."""

from app.patterns.model import (
    Pattern,
    PatternInvalid,
    PatternOutcome,
    PatternRunError,
    parse_pattern,
)
from app.patterns.registry import PatternProblem, PatternRegistry, get_pattern_registry

__all__ = [
    "Pattern",
    "PatternInvalid",
    "PatternOutcome",
    "PatternProblem",
    "PatternRegistry",
    "PatternRunError",
    "get_pattern_registry",
    "parse_pattern",
]
