"""How `./run.sh test` shares the suite among parallel workers (pytest-xdist).

The suite is a few long files (real processes, real clocks, a real browser) that mostly wait,
and many short ones. So:

* a test file is one unit, run whole on one worker, so that module fixtures (the browser
  tests' server, say) are built once;
* the units start longest first, weighed by each file's seconds in a recorded run
  (`tests/durations.json`, rewritten by `--store-durations`), so that a long file never
  starts last while the other workers idle; a file missing from it weighs nothing;
* the fleet files - several real processes ticking many bots, asserting lateness, rates and
  answer times against the clock - share FLEET_LANES lanes, each lane one unit run one file
  after another: two fleets at most run at once, instead of every worker's fleet competing
  for the same two cores and then missing a candle.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

ROOT_OF_TESTS = Path(__file__).resolve().parents[1]
DURATIONS_FILE = ROOT_OF_TESTS / "durations.json"
FLEET_LANES = 2
FLEET_FILES = (
    "tests/faults/test_outages.py",
    "tests/services/test_emergency_presses.py",
    "tests/jobs/test_exactly_once.py",
    "tests/jobs/test_job_runner_processes.py",
    "tests/services/test_emergency_processes.py",
    "tests/services/test_notifications_processes.py",
    "tests/jobs/test_search_trial_processes.py",
)


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def read_weights(path: Path = DURATIONS_FILE) -> dict[str, float]:
    try:
        return {str(name): float(seconds) for name, seconds in json.loads(path.read_text()).items()}
    except FileNotFoundError:
        return {}


def fleet_lanes(weights: dict[str, float]) -> dict[str, str]:
    """Fleet file -> its lane, heaviest file first into the lightest lane."""
    load = [0.0] * FLEET_LANES
    lanes = {}
    for name in sorted(FLEET_FILES, key=lambda name: (-weights.get(name, 0.0), name)):
        lane = load.index(min(load))
        load[lane] += weights.get(name, 0.0)
        lanes[name] = f"fleet-lane-{lane}"
    return lanes


def unit_of(nodeid: str, lanes: dict[str, str]) -> str:
    name = file_of(nodeid)
    return lanes.get(name, name)


def longest_units_first(items: list[pytest.Item], weights: dict[str, float]) -> None:
    """Sort in place: heaviest unit first; a unit's tests stay together and in their order."""
    lanes = fleet_lanes(weights)
    unit_weight: dict[str, float] = defaultdict(float)
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        unit = unit_of(item.nodeid, lanes)
        first_seen.setdefault(unit, index)
    for name in {file_of(item.nodeid) for item in items}:
        unit_weight[unit_of(name, lanes)] += weights.get(name, 0.0)

    def order(item: pytest.Item) -> tuple[float, int, int]:
        unit = unit_of(item.nodeid, lanes)
        in_lane = FLEET_FILES.index(file_of(item.nodeid)) if unit in lanes.values() else 0
        return (-unit_weight[unit], first_seen[unit], in_lane)

    items.sort(key=order)


def make_scheduler(config: pytest.Config, log: object) -> object:
    """pytest-xdist's file scheduling, with the fleet files of a lane as one unit."""
    from xdist.scheduler import LoadScopeScheduling

    lanes = fleet_lanes(read_weights())

    class LaneScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid, lanes)

    return LaneScheduling(config, log)  # type: ignore[arg-type]


class DurationRecorder:
    """Adds up the seconds of every phase of every test, per file, and writes them at the end
    (on the controller only, where a parallel run's reports all arrive)."""

    def __init__(self, path: Path = DURATIONS_FILE) -> None:
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[file_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):
            return
        ordered = dict(sorted(((name, round(s, 1)) for name, s in self.seconds.items()),
                              key=lambda kv: (-kv[1], kv[0])))  # fmt: skip
        self.path.write_text(json.dumps(ordered, indent=1) + "\n")
