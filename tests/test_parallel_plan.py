"""The plan that shares the suite among parallel workers (tests/support/parallel.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tests.support.parallel import FLEET_FILES, ROOT_OF_TESTS, fleet_lanes, longest_units_first


def test_every_fleet_file_exists_and_is_weighed() -> None:
    missing = [name for name in FLEET_FILES if not (ROOT_OF_TESTS.parent / name).is_file()]
    assert missing == []


def test_fleet_files_fill_the_lightest_lane_first() -> None:
    weights = dict(zip(FLEET_FILES, (60.0, 50.0, 40.0, 30.0, 20.0, 10.0, 5.0), strict=True))
    lanes = fleet_lanes(weights)
    load: dict[str, float] = {}
    for name, lane in lanes.items():
        load[lane] = load.get(lane, 0.0) + weights[name]
    assert set(lanes) == set(FLEET_FILES)
    assert sorted(load.values()) == [105.0, 110.0]


def test_units_run_heaviest_first_and_keep_their_tests_together() -> None:
    fleet_a, fleet_b = FLEET_FILES[0], FLEET_FILES[1]
    weights = {"tests/a.py": 1.0, "tests/b.py": 50.0, fleet_a: 30.0, fleet_b: 30.0}
    items: list[Any] = [SimpleNamespace(nodeid=f"{name}::test_{n}")
                        for name in ("tests/a.py", fleet_a, "tests/b.py", fleet_b)
                        for n in (1, 2)]  # fmt: skip
    longest_units_first(items, weights)
    files = [item.nodeid.split("::")[0] for item in items]
    # the two fleet files are in different lanes (30 s each), below b's 50 s, above a's 1 s
    assert files == ["tests/b.py", "tests/b.py", fleet_a, fleet_a, fleet_b, fleet_b,
                     "tests/a.py", "tests/a.py"]  # fmt: skip
    assert [item.nodeid for item in items][:2] == ["tests/b.py::test_1", "tests/b.py::test_2"]
