"""Position sizing against hand-computed stakes."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from app.domain.sizing import SizingConfig, size_position, validate_sizing_config
from app.errors import ValidationFailed

# wins 10, 20, 15 (average 15); losses 5, 10 (average 7.5)
# W = 3/5 = 0.6, R = 15 / 7.5 = 2, f* = 0.6 - 0.4 / 2 = 0.4
EDGE = [D(10), D(-5), D(20), D(-10), D(15)]


def size(pnls, equity="1000", capital="1000", cash="800", **config):
    return size_position(
        pnls, equity=D(equity), capital=D(capital), cash=D(cash), config=SizingConfig(**config)
    )


def test_half_kelly_on_a_positive_edge():
    d = size(EDGE)
    assert d.mode == "kelly" and not d.bootstrap
    assert d.win_rate == D("0.6")
    assert d.payoff_ratio == D(2)
    assert d.kelly_fraction == D("0.4")
    # 0.4 * 0.5 = 0.2 (below the 0.25 cap) ; 0.2 * equity 1000 = 200
    assert d.applied_fraction == D("0.2")
    assert d.stake == D(200)
    assert not d.capped_by_cash
    assert "Kelly f* = 0.4000" in d.reason
    assert d.trades == 5


def test_default_config_is_half_kelly():
    d = size_position(EDGE, equity=D(1000), capital=D(1000), cash=D(800))
    assert d.stake == D(200)


def test_kelly_is_capped():
    # wins 30 x3 (avg 30), losses 10 x2 (avg 10): W 0.6, R 3, f* = 0.6 - 0.4/3 = 0.4667
    # full Kelly 0.4667 > cap 0.25 -> 0.25 * 1000 = 250
    d = size([D(30), D(-10), D(30), D(-10), D(30)], kelly_fraction=D(1))
    assert d.kelly_fraction == D("0.6") - D("0.4") / D(3)
    assert d.applied_fraction == D("0.25")
    assert d.stake == D(250)
    assert "capped at 0.25" in d.reason


def test_stake_never_exceeds_cash():
    d = size(EDGE, cash="150")  # Kelly says 200
    assert d.stake == D(150)
    assert d.capped_by_cash
    assert "available cash" in d.reason
    assert size(EDGE, cash="-3").stake == D(0)


def test_negative_edge_stakes_nothing():
    # wins 10, 10, 5 (avg 25/3); losses 20, 20 (avg 20): W 0.6, R = (25/3)/20 = 5/12
    # f* = 0.6 - 0.4 / (5/12) = 0.6 - 0.96 = -0.36
    d = size([D(10), D(-20), D(10), D(-20), D(5)])
    assert d.stake == D(0)
    assert str(d.stake) == "0"
    assert d.kelly_fraction == pytest.approx(D("-0.36"), abs=D("1e-20"))
    assert d.reason.startswith("non-positive edge")
    assert not d.bootstrap


def test_zero_edge_stakes_nothing():
    # wins 10 (avg 10), losses 10 (avg 10): W 0.5, R 1, f* = 0.5 - 0.5/1 = 0
    d = size([D(10), D(-10), D(10), D(-10), D(10), D(-10)])
    assert d.kelly_fraction == 0
    assert d.stake == 0


def test_bootstrap_boundary_four_versus_five_trades():
    four = size(EDGE[:4], capital="500")
    assert four.bootstrap
    # 1 % of capital 500 = 5 (capital, not equity 1000)
    assert four.stake == D(5)
    assert four.applied_fraction == D("0.01")
    assert four.kelly_fraction is None
    assert "bootstrap" in four.reason

    five = size(EDGE, capital="500")
    assert not five.bootstrap
    assert five.stake == D(200)  # Kelly from the 5 trades, on equity


def test_bootstrap_threshold_and_percent_are_configurable_and_cash_capped():
    d = size([D(1)] * 6, capital="500", bootstrap_trades=10, bootstrap_percent=D(2))
    assert d.bootstrap and d.stake == D(10)  # 2 % of 500
    assert size([], capital="500", cash="3").stake == D(3)
    assert not size([], bootstrap_trades=0).bootstrap


def test_no_losing_trades_means_capped_full_fraction():
    # no loss: R unbounded, f* = W = 1 ; 1 * 0.5 = 0.5 > cap 0.25 -> 250
    d = size([D(1), D(2), D(3), D(4), D(5)])
    assert d.payoff_ratio is None
    assert d.kelly_fraction == 1
    assert d.stake == D(250)


def test_no_winning_trades_stakes_nothing():
    d = size([D(-1)] * 5)
    assert d.win_rate == 0 and d.payoff_ratio == 0 and d.kelly_fraction is None
    assert d.stake == 0
    assert "no winning trades" in d.reason


def test_break_even_trades_are_neither_wins_nor_losses():
    only_flat = size([D(0)] * 5)
    assert only_flat.stake == 0 and only_flat.win_rate is None
    # EDGE plus a break-even trade: still W 0.6, R 2 -> 200
    d = size([*EDGE, D(0)])
    assert d.win_rate == D("0.6") and d.stake == D(200) and d.trades == 6


def test_no_equity_stakes_nothing():
    assert size(EDGE, equity="0").stake == 0


def test_fixed_and_percent_modes():
    fixed = size(EDGE, mode="fixed", stake=D(50))
    assert fixed.stake == D(50) and fixed.mode == "fixed" and fixed.applied_fraction is None
    assert size([], mode="fixed", stake=D(50), cash="30").stake == D(30)
    pct = size([], mode="percent", percent=D("2.5"))
    assert pct.stake == D(25) and pct.applied_fraction == D("0.025") and not pct.bootstrap


def test_stake_is_rounded_down_to_the_quantum():
    # 10 % of 1000.123456789 = 100.0123456789 -> 100.01234567 (down, 8 places)
    d = size([], mode="percent", percent=D(10), equity="1000.123456789", cash="5000")
    assert d.stake == D("100.01234567")
    d2 = size_position([], equity=D(1000), capital=D("333.333"), cash=D(50), quantum=D("0.01"))
    assert d2.stake == D("3.33")  # 1 % of 333.333 = 3.33333 -> 3.33


def test_to_dict_is_json_ready():
    out = size(EDGE).to_dict()
    assert out["stake"] == "200.00000000"
    assert out["win_rate"] == "0.6"
    assert out["payoff_ratio"] == "2"
    assert out["bootstrap"] is False
    assert out["mode"] == "kelly"


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"mode": "fixed"}, []),
        ({"mode": "percent"}, []),
        ({"mode": "martingale"}, ["mode"]),
        ({"kelly_cap": 1.5}, ["kelly_cap"]),
        ({"kelly_fraction": 0}, ["kelly_fraction"]),
        ({"percent": "NaN", "mode": "percent"}, ["percent"]),
        ({"bootstrap_trades": -1}, ["bootstrap_trades"]),
        ({"leverage": 3}, ["leverage"]),
    ],
)
def test_bad_config_is_a_validation_error(data, loc):
    with pytest.raises(ValidationFailed) as err:
        validate_sizing_config(data)
    assert err.value.details[0]["loc"] == loc


def test_config_from_json_numbers():
    cfg = validate_sizing_config({"mode": "percent", "percent": 2.5, "kelly_cap": "0.1"})
    assert cfg.percent == D("2.5") and cfg.kelly_cap == D("0.1")
    assert validate_sizing_config(None) == SizingConfig()
