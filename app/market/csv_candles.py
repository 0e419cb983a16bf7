"""Candle CSV files: parse fast, validate strictly, import atomically.

Format: one candle per line, ``timestamp,open,high,low,close,volume`` (timestamp = candle open
time in epoch milliseconds, UTC); an optional header line naming those columns. File name
convention: ``<EXCHANGE>_<BASE>-<QUOTE>_<TIMEFRAME>.csv`` (e.g. ``BINANCE_ETH-BTC_5m.csv``, symbol
``ETH/BTC``).

Parsing is one ``numpy.loadtxt`` over the whole file; only when that fails is the file walked
line by line, to say *which* line is wrong. Every rule breach raises ``ValidationFailed`` with
code ``invalid_candles`` whose details name line numbers and reasons. Gaps (missing candles) are
not errors: real exchanges have outages, so they are counted and reported in a `GapReport`.

`import_candle_file` validates first and only then writes a normalised copy into the target
directory through a temporary file and ``os.replace``, so a bad file never replaces a good one
and a crash mid-write never leaves a half file under the final name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np

from app.domain.candles import Candles
from app.errors import ValidationFailed
from app.market.base import TIMEFRAME_SECONDS

__all__ = [
    "COLUMNS",
    "CandleFileName",
    "CandleSeries",
    "Gap",
    "GapReport",
    "ImportResult",
    "ProgressCallback",
    "import_candle_file",
    "infer_step",
    "gap_report",
    "load_candle_file",
    "parse_candle_text",
    "scan_candle_dirs",
    "store_candles",
    "stored_candles",
]

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
_TIME_HEADER_ALIASES = {"timestamp", "time", "date", "ts", "open_time"}
MAX_REPORTED_ERRORS = 20
MAX_REPORTED_GAPS = 5
_WRITE_CHUNK_ROWS = 5000
_MAX_DECIMALS = 12
_NAME_RE = re.compile(r"^([A-Za-z0-9]+)_([A-Za-z0-9]+)-([A-Za-z0-9]+)_([0-9]+[mhdM])\.csv$")

ProgressCallback = Callable[[int, int], None]
log = logging.getLogger("tradewind.market.candles")


def _invalid(message: str, details: list[dict] | None = None) -> ValidationFailed:
    return ValidationFailed(message, code="invalid_candles", details=details or [])


@dataclass(frozen=True)
class CandleFileName:
    """The parts of ``<EXCHANGE>_<BASE>-<QUOTE>_<TIMEFRAME>.csv``."""

    exchange: str
    base: str
    quote: str
    timeframe: str

    def __post_init__(self) -> None:
        if self.timeframe not in TIMEFRAME_SECONDS:
            raise _invalid(
                f"unknown timeframe {self.timeframe!r}; supported: {', '.join(TIMEFRAME_SECONDS)}"
            )
        for part in (self.exchange, self.base, self.quote):
            if not part.isalnum():
                raise _invalid(f"exchange, base and quote must be alphanumeric, got {part!r}")

    @property
    def symbol(self) -> str:
        return f"{self.base}/{self.quote}"

    @property
    def filename(self) -> str:
        return f"{self.exchange}_{self.base}-{self.quote}_{self.timeframe}.csv"

    @classmethod
    def parse(cls, name: str) -> CandleFileName:
        m = _NAME_RE.match(os.path.basename(name))
        if m is None:
            raise _invalid(
                f"file name {os.path.basename(name)!r} does not follow "
                "<EXCHANGE>_<BASE>-<QUOTE>_<TIMEFRAME>.csv (e.g. BINANCE_ETH-BTC_5m.csv)"
            )
        exchange, base, quote, timeframe = m.groups()
        return cls(exchange.upper(), base.upper(), quote.upper(), timeframe)

    @classmethod
    def from_symbol(cls, exchange: str, symbol: str, timeframe: str) -> CandleFileName:
        base, sep, quote = symbol.partition("/")
        if not sep:
            raise _invalid(f"symbol must look like BASE/QUOTE, got {symbol!r}")
        return cls(exchange.upper(), base.upper(), quote.upper(), timeframe)


@dataclass(frozen=True)
class Gap:
    """Candles missing between two present ones (open times in epoch ms)."""

    after_ts: int
    next_ts: int
    missing: int


@dataclass(frozen=True)
class GapReport:
    count: int
    missing_candles: int
    first: tuple[Gap, ...]

    def as_dict(self) -> dict:
        return {
            "count": self.count,
            "missing_candles": self.missing_candles,
            "first": [g.__dict__ for g in self.first],
        }


@dataclass(frozen=True)
class CandleSeries:
    """A validated candle file: arrays plus what was learned about the data."""

    candles: Candles
    timeframe: str
    gaps: GapReport
    price_step: Decimal
    amount_step: Decimal


@dataclass(frozen=True)
class ImportResult:
    path: Path
    name: CandleFileName
    rows: int
    first_ts: int
    last_ts: int
    gaps: GapReport
    replaced: bool


def infer_step(values: np.ndarray) -> Decimal:
    """The coarsest decimal step every value sits on (0.000001 for prices written with 6
    decimals, 1 for whole volumes): the fewest decimals that reproduce each float to within a
    few ulps, which is what a value parsed from that many written decimals satisfies."""
    u = np.asarray(values, dtype=np.float64).ravel()
    tol = 4 * np.spacing(np.abs(u))
    for d in range(_MAX_DECIMALS + 1):
        if np.all(np.abs(np.round(u, d) - u) <= tol):
            return Decimal(1).scaleb(-d)
    return Decimal(1).scaleb(-_MAX_DECIMALS)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_header(fields: list[str], line_no: int) -> None:
    names = [f.strip().lower() for f in fields]
    if (
        len(names) != len(COLUMNS)
        or names[0] not in _TIME_HEADER_ALIASES
        or tuple(names[1:]) != COLUMNS[1:]
    ):
        raise _invalid(
            f"line {line_no}: header must be {','.join(COLUMNS)}",
            [{"loc": ["line", line_no], "line": line_no, "msg": "unexpected header"}],
        )


def _locate_parse_error(body: Sequence[str], line_nos: np.ndarray) -> ValidationFailed:
    """Slow path, only after the fast parse failed: find the offending lines."""
    details: list[dict] = []
    for text, line_no in zip(body, line_nos, strict=True):
        for col, field in zip(COLUMNS, text.split(","), strict=False):
            if not _is_number(field):
                details.append(
                    {
                        "loc": ["line", int(line_no), col],
                        "line": int(line_no),
                        "msg": f"{col} is not a number: {field.strip()[:40]!r}",
                    }
                )
                break
        if len(details) >= MAX_REPORTED_ERRORS:
            break
    if not details:
        details.append({"loc": ["file"], "line": None, "msg": "could not parse as numbers"})
    first = details[0]
    return _invalid(f"line {first['line']}: {first['msg']}", details)


def _row_problems(
    arr: np.ndarray, line_nos: np.ndarray, tf_ms: int
) -> tuple[list[tuple[int, str, str]], int]:
    """All rule breaches as (line, column, reason), capped, plus their total count."""
    ts, o, h, lo, c, v = arr.T
    checks: list[tuple[np.ndarray, str, str]] = []
    finite = np.isfinite(arr)
    for i, col in enumerate(COLUMNS):
        checks.append((~finite[:, i], col, f"{col} is not a finite number"))
    with np.errstate(invalid="ignore"):
        checks += [
            ((ts != np.floor(ts)) | (ts < 0), "timestamp", "timestamp must be whole ms >= 0"),
            ((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "open", "prices must be > 0"),
            (v < 0, "volume", "volume must be >= 0"),
            (h < np.maximum(o, c), "high", "high is below max(open, close)"),
            (lo > np.minimum(o, c), "low", "low is above min(open, close)"),
            (h < lo, "high", "high is below low"),
            (np.mod(ts, tf_ms) != 0, "timestamp", f"timestamp not aligned to {tf_ms // 1000}s"),
        ]
    d = np.diff(ts)
    pad = np.zeros(1, dtype=bool)
    checks.append((np.concatenate([pad, d == 0]), "timestamp", "duplicate timestamp"))
    checks.append(
        (np.concatenate([pad, d < 0]), "timestamp", "timestamp not after the previous row")
    )
    problems: list[tuple[int, str, str]] = []
    total = 0
    for mask, col, reason in checks:
        idx = np.flatnonzero(mask)
        total += int(idx.size)
        problems += [(int(line_nos[i]), col, reason) for i in idx[:MAX_REPORTED_ERRORS]]
    problems.sort()
    return problems[:MAX_REPORTED_ERRORS], total


def _gap_report(ts: np.ndarray, tf_ms: int) -> GapReport:
    d = np.diff(ts)
    idx = np.flatnonzero(d > tf_ms)
    missing = (d[idx] // tf_ms) - 1
    first = tuple(
        Gap(int(ts[i]), int(ts[i + 1]), int(m))
        for i, m in zip(idx[:MAX_REPORTED_GAPS], missing[:MAX_REPORTED_GAPS], strict=True)
    )
    return GapReport(int(idx.size), int(missing.sum()), first)


def parse_candle_text(text: str, timeframe: str, source: str = "<text>") -> CandleSeries:
    """Parse and validate candle CSV text; raises ``ValidationFailed`` (``invalid_candles``)."""
    if timeframe not in TIMEFRAME_SECONDS:
        raise _invalid(f"unknown timeframe {timeframe!r}")
    tf_ms = TIMEFRAME_SECONDS[timeframe] * 1000
    lines = text.splitlines()
    body: list[str] = []
    line_no_list: list[int] = []
    header_seen = False
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not body and not header_seen:
            fields = line.split(",")
            if not _is_number(fields[0]):
                _check_header(fields, n)
                header_seen = True
                continue
        body.append(line)
        line_no_list.append(n)
    if not body:
        raise _invalid(f"{source}: no candle rows")
    line_nos = np.asarray(line_no_list, dtype=np.int64)

    wrong = [(int(line_nos[i]), b.count(",") + 1) for i, b in enumerate(body) if b.count(",") != 5]
    if wrong:
        details = [
            {
                "loc": ["line", ln],
                "line": ln,
                "msg": f"expected {len(COLUMNS)} columns, found {k}",
            }
            for ln, k in wrong[:MAX_REPORTED_ERRORS]
        ]
        raise _invalid(f"{source}: line {wrong[0][0]}: {details[0]['msg']}", details)

    try:
        arr = np.loadtxt(body, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError:
        err = _locate_parse_error(body, line_nos)
        err.message = f"{source}: {err.message}"
        err.args = (err.message,)
        raise err from None

    problems, total = _row_problems(arr, line_nos, tf_ms)
    if problems:
        details = [
            {"loc": ["line", ln, col], "line": ln, "msg": reason} for ln, col, reason in problems
        ]
        ln, _, reason = problems[0]
        raise _invalid(f"{source}: {total} problem(s); first at line {ln}: {reason}", details)

    ts = arr[:, 0].astype(np.int64)
    candles = Candles(
        ts,
        np.ascontiguousarray(arr[:, 1]),
        np.ascontiguousarray(arr[:, 2]),
        np.ascontiguousarray(arr[:, 3]),
        np.ascontiguousarray(arr[:, 4]),
        np.ascontiguousarray(arr[:, 5]),
    )
    return CandleSeries(
        candles=candles,
        timeframe=timeframe,
        gaps=_gap_report(ts, tf_ms),
        price_step=infer_step(arr[:, 1:5]),
        amount_step=infer_step(arr[:, 5]),
    )


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _invalid(f"{path.name}: file not found") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _invalid(f"{path.name}: not UTF-8 text (byte {exc.start})") from None


def load_candle_file(path: str | os.PathLike[str]) -> tuple[CandleFileName, CandleSeries]:
    """Read and validate one conventionally named candle file."""
    p = Path(path)
    name = CandleFileName.parse(p.name)
    return name, parse_candle_text(_read_text(p), name.timeframe, p.name)


def scan_candle_dirs(
    dirs: Sequence[str | os.PathLike[str]],
) -> dict[str, dict[str, tuple[CandleFileName, Path]]]:
    """symbol -> timeframe -> (name, path) of the candle files in `dirs`; a later folder wins
    for the same symbol and timeframe (imports override the shipped data). Files not named
    `<EXCHANGE>_<BASE>-<QUOTE>_<TF>.csv` are logged and skipped; missing folders are skipped."""
    found: dict[str, dict[str, tuple[CandleFileName, Path]]] = {}
    for directory in dirs:
        d = Path(directory)
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.csv")):
            try:
                name = CandleFileName.parse(path.name)
            except (ValidationFailed, ValueError):
                log.warning("ignoring %s: not named <EXCHANGE>_<BASE>-<QUOTE>_<TF>.csv", path)
                continue
            found.setdefault(name.symbol, {})[name.timeframe] = (name, path)
    return found


def _decimals(step: Decimal) -> int:
    exp = step.as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


def import_candle_file(
    source: str | os.PathLike[str],
    target_dir: str | os.PathLike[str],
    *,
    name: CandleFileName | None = None,
    on_progress: ProgressCallback | None = None,
) -> ImportResult:
    """Validate ``source`` and write a normalised copy to ``target_dir/<conventional name>``.

    ``name`` defaults to the parts of the source file's own name. Nothing is written unless the
    whole file is valid. ``on_progress(done_rows, total_rows)`` is called as rows are written.
    """
    src = Path(source)
    name = name or CandleFileName.parse(src.name)
    series = parse_candle_text(_read_text(src), name.timeframe, src.name)
    return _write_series(series, target_dir, name, on_progress)


def store_candles(
    candles: Candles,
    target_dir: str | os.PathLike[str],
    name: CandleFileName,
    *,
    on_progress: ProgressCallback | None = None,
) -> ImportResult:
    """Validate candles obtained elsewhere (a download) by the rules a CSV import obeys and
    write them as ``target_dir/<conventional name>``, replacing the file atomically."""
    if len(candles) == 0:
        raise _invalid(f"{name.filename}: no candle rows")
    tf_ms = TIMEFRAME_SECONDS[name.timeframe] * 1000
    arr = np.column_stack(
        [candles.ts.astype(np.float64), candles.open, candles.high, candles.low, candles.close,
         candles.volume]
    )  # fmt: skip
    problems, total = _row_problems(arr, np.arange(1, len(candles) + 1), tf_ms)
    if problems:
        details = [
            {"loc": ["row", n, col], "line": n, "msg": reason} for n, col, reason in problems
        ]
        row, _, reason = problems[0]
        raise _invalid(
            f"{name.filename}: {total} problem(s); first at row {row}: {reason}", details
        )
    series = CandleSeries(
        candles=candles,
        timeframe=name.timeframe,
        gaps=_gap_report(candles.ts, tf_ms),
        price_step=infer_step(arr[:, 1:5]),
        amount_step=infer_step(arr[:, 5]),
    )
    return _write_series(series, target_dir, name, on_progress)


def stored_candles(target_dir: str | os.PathLike[str], name: CandleFileName) -> Candles | None:
    """The candles already stored under ``name`` (validated), or None when there is no file."""
    path = Path(target_dir) / name.filename
    if not path.exists():
        return None
    return parse_candle_text(_read_text(path), name.timeframe, path.name).candles


def gap_report(ts: np.ndarray, timeframe: str) -> GapReport:
    """Missing candles between consecutive open times (``ts`` ascending, epoch ms)."""
    return _gap_report(np.asarray(ts, dtype=np.int64), TIMEFRAME_SECONDS[timeframe] * 1000)


def _write_series(
    series: CandleSeries,
    target_dir: str | os.PathLike[str],
    name: CandleFileName,
    on_progress: ProgressCallback | None,
) -> ImportResult:
    c = series.candles
    total = len(c)
    if on_progress:
        on_progress(0, total)

    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    final = target / name.filename
    replaced = final.exists()
    pd, vd = _decimals(series.price_step), _decimals(series.amount_step)
    fmt = ["%d"] + [f"%.{pd}f"] * 4 + [f"%.{vd}f"]
    columns = (c.ts, c.open, c.high, c.low, c.close, c.volume)

    fd, tmp_name = tempfile.mkstemp(dir=target, prefix=f".{name.filename}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(",".join(COLUMNS) + "\n")
            for start in range(0, total, _WRITE_CHUNK_ROWS):
                stop = min(start + _WRITE_CHUNK_ROWS, total)
                block = np.column_stack([col[start:stop] for col in columns])
                np.savetxt(fh, block, fmt=fmt, delimiter=",")
                if on_progress:
                    on_progress(stop, total)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(target)
    return ImportResult(
        path=final,
        name=name,
        rows=total,
        first_ts=int(c.ts[0]),
        last_ts=int(c.ts[-1]),
        gaps=series.gaps,
        replaced=replaced,
    )


def _fsync_dir(path: Path) -> None:
    """Make the rename durable; best effort (not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
