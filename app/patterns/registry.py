"""The patterns folder, hot-reloaded: files are re-read when their mtime, size or inode changes.

Every access (`get`, `patterns`, `errors`) first compares each `*.yaml`/`*.yml` file's stat
signature with the one it was loaded from; only changed files are parsed again, so a running
process picks up an edited pattern without a restart. A file that fails validation is
reported (file, line, reason) and the last good version of that file stays active; a removed
file's pattern disappears. Two files declaring the same name: the first in file-name order
wins and the other is reported.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import NotFound
from app.patterns.model import Pattern, PatternInvalid, parse_pattern
from config import get_settings

log = logging.getLogger("tradewind.patterns")

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class PatternProblem:
    file: str
    line: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


@dataclass
class _FileState:
    signature: tuple[int, int, int]
    pattern: Pattern | None  # the last good version
    problem: PatternProblem | None


class PatternRegistry:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._files: dict[str, _FileState] = {}

    def _scan(self) -> dict[str, tuple[Path, tuple[int, int, int]]]:
        found: dict[str, tuple[Path, tuple[int, int, int]]] = {}
        try:
            entries = sorted(self.directory.iterdir())
        except OSError:
            return found
        for path in entries:
            if path.suffix not in SUFFIXES or path.name.startswith("."):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            found[path.name] = (path, (st.st_mtime_ns, st.st_size, st.st_ino))
        return found

    def refresh(self) -> None:
        """Reload what changed on disk (cheap when nothing did: one stat per file)."""
        with self._lock:
            found = self._scan()
            for name in list(self._files):
                if name not in found:
                    del self._files[name]
                    log.info("pattern file %s removed", name)
            for name, (path, signature) in found.items():
                state = self._files.get(name)
                if state is not None and state.signature == signature:
                    continue
                previous = state.pattern if state else None
                self._files[name] = self._load(path, signature, previous)

    def _load(
        self, path: Path, signature: tuple[int, int, int], previous: Pattern | None
    ) -> _FileState:
        try:
            text = path.read_text(encoding="utf-8")
            pattern = parse_pattern(text, path.name, path.stem)
        except PatternInvalid as exc:
            problem = PatternProblem(path.name, exc.line, exc.reason)
        except (OSError, UnicodeDecodeError) as exc:
            problem = PatternProblem(path.name, None, f"cannot read file: {exc}")
        else:
            log.info("pattern %s loaded from %s", pattern.name, path.name)
            return _FileState(signature, pattern, None)
        log.warning(
            "pattern file %s rejected (line %s): %s%s",
            path.name,
            problem.line,
            problem.reason,
            "; keeping the last good version" if previous else "",
        )
        return _FileState(signature, previous, problem)

    def _active(self) -> tuple[dict[str, Pattern], list[PatternProblem]]:
        self.refresh()
        with self._lock:
            patterns: dict[str, Pattern] = {}
            problems = [s.problem for s in self._files.values() if s.problem]
            for name, state in sorted(self._files.items()):
                pattern = state.pattern
                if pattern is None:
                    continue
                if pattern.name in patterns:
                    problems.append(
                        PatternProblem(
                            name,
                            None,
                            f"pattern name {pattern.name!r} already defined by "
                            f"{patterns[pattern.name].source}; this file is ignored",
                        )
                    )
                    continue
                patterns[pattern.name] = pattern
            return patterns, problems

    def patterns(self) -> list[Pattern]:
        return list(self._active()[0].values())

    def problems(self) -> list[PatternProblem]:
        return self._active()[1]

    def get(self, name: str) -> Pattern:
        pattern = self._active()[0].get(name)
        if pattern is None:
            raise NotFound(f"unknown pattern {name!r}", code="unknown_pattern")
        return pattern


_registries: dict[str, PatternRegistry] = {}
_registries_lock = threading.Lock()


def get_pattern_registry(directory: str | None = None) -> PatternRegistry:
    """The process's registry for the configured PATTERNS_DIR (or the given folder)."""
    if directory is None:
        directory = get_settings().patterns_dir
    key = str(Path(directory).resolve())
    with _registries_lock:
        registry = _registries.get(key)
        if registry is None:
            registry = _registries[key] = PatternRegistry(key)
        return registry
