"""Response models of a bot's ledger views: orders, trades (fills), positions, equity points
and performance. Money is decimal text (`DecimalText`), moments ISO 8601 UTC (`UtcTime`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from app.api.types import ApiModel, DecimalText, UtcTime


class OrderOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    client_order_id: str = Field(description="deterministic per bot and tick: one order per tick")
    side: str = Field(description="buy | sell")
    type: str = Field(description="market | limit")
    state: str = Field(description="open | filled | cancelled | rejected")
    amount: DecimalText | None = Field(description="base amount asked for (None: quote_amount)")
    quote_amount: DecimalText | None = Field(description="quote to spend on a market buy")
    price: DecimalText | None = Field(description="limit price")
    filled_amount: DecimalText | None
    average_price: DecimalText | None
    cost: DecimalText | None = Field(description="quote paid or received, fees excluded")
    fee: DecimalText | None
    bootstrap: bool = Field(description="placed while sizing was still bootstrapping")
    reason: str | None = Field(description="why the bot placed it")
    entry_tag: str | None = Field(None, description="a buy: the tag of the strategy document's "
                                  "entry that fired (docs/strategies.md, tagged entries)")
    state_reason: str | None = Field(description="why it ended in its state")
    fill_from: UtcTime | None = Field(description="the first candle that may fill it")
    created_at: UtcTime
    filled_at: UtcTime | None
    closed_at: UtcTime | None


class TradeOut(ApiModel):
    """One execution (fill); the fill that closed a position carries the round trip's net
    result in `closed_trade_pnl`."""

    id: int
    order_id: int
    client_order_id: str
    side: str
    amount: DecimalText
    price: DecimalText
    cost: DecimalText
    fee: DecimalText
    fee_asset: str
    liquidity: str = Field(description="maker | taker")
    realised_pnl: DecimalText
    closed_trade_pnl: DecimalText | None
    exit_reason: str | None = Field(
        None,
        description="on the fill that closed a round trip: exit_signal, stop_loss, "
        "trailing_stop, roi, max_hold, manual or emergency",
    )
    bootstrap: bool
    candle_ts: UtcTime = Field(description="open time of the candle it filled on")
    filled_at: UtcTime


class BalanceOut(ApiModel):
    free: DecimalText
    locked: DecimalText


class PositionOut(ApiModel):
    """The bot's book for its symbol, valued at the market's last price when one is known."""

    symbol: str
    base: str
    quote: str
    amount: DecimalText
    avg_entry_price: DecimalText | None
    cost_basis: DecimalText
    initial_capital: DecimalText
    cash: DecimalText
    realised_pnl: DecimalText
    fees_paid: DecimalText
    open_orders: int
    price: DecimalText | None
    equity: DecimalText | None
    unrealised_pnl: DecimalText | None
    balances: dict[str, BalanceOut]


class EquityPointOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    ts: UtcTime
    equity: DecimalText
    cash: DecimalText
    position_amount: DecimalText
    price: DecimalText


class MetricsOut(ApiModel):
    """Performance metrics; docs/metrics.md says what each one means. Ratios are plain
    numbers; a metric that cannot be computed is null and `unavailable` says why."""

    start_ts: UtcTime | None
    end_ts: UtcTime | None
    start_equity: float | None
    end_equity: float | None
    total_return: float | None = Field(description="last / first equity - 1 (0.05 = +5 %)")
    max_drawdown: float = Field(description="largest fall from a peak, a fraction of the peak")
    max_drawdown_peak_ts: UtcTime | None
    max_drawdown_trough_ts: UtcTime | None
    sharpe: float | None = Field(description="daily returns, annualised by sqrt(365)")
    sortino: float | None = Field(description="daily returns, annualised by sqrt(365)")
    exposure: float | None = Field(description="share of the time spent in a position")
    n_trades: int
    wins: int
    losses: int
    win_rate: float | None
    profit_factor: float | None = Field(description="gross profit / gross loss")
    gross_profit: DecimalText
    gross_loss: DecimalText
    daily_returns: int = Field(description="how many daily returns the ratios are built on")
    unavailable: dict[str, str] = Field(description="metric -> why it is null")


class EquitySummaryOut(ApiModel):
    points: int = Field(description="equity points the metrics are computed on")
    start: float | None
    end: float | None
    capital: DecimalText | None


class PerformanceOut(ApiModel):
    bot_id: int
    metrics: MetricsOut
    equity: EquitySummaryOut


class OrderPage(ApiModel):
    items: list[OrderOut]
    total: int
    limit: int
    offset: int


class TradePage(ApiModel):
    items: list[TradeOut]
    total: int
    limit: int
    offset: int


class PositionList(ApiModel):
    items: list[PositionOut]
    total: int
    limit: int
    offset: int = 0


class EquityList(ApiModel):
    items: list[EquityPointOut]
    total: int | None = None
    limit: int
    offset: int = 0
