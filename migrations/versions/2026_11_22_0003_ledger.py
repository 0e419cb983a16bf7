"""ledger: orders, fills, positions, balances, equity and pricing snapshots

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.store.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# app.store.models.ledger.ExactDecimal: exact numeric on Postgres, canonical text on SQLite.
DECIMAL = sa.Numeric(precision=38, scale=18).with_variant(sa.String(length=48), "sqlite")


def upgrade() -> None:
    op.create_table('pricing_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('base_currency', sa.String(length=10), nullable=False),
    sa.Column('total', DECIMAL, nullable=False),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('inputs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('valuation', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', app.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_pricing_snapshots_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pricing_snapshots'))
    )
    op.create_index('ix_pricing_snapshots_user', 'pricing_snapshots', ['user_id', 'created_at'], unique=False)
    op.create_table('balances',
    sa.Column('bot_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('asset', sa.String(length=16), nullable=False),
    sa.Column('free', DECIMAL, nullable=False),
    sa.Column('locked', DECIMAL, nullable=False),
    sa.Column('updated_at', app.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('CAST(free AS NUMERIC) >= 0', name=op.f('ck_balances_free_non_negative')),
    sa.CheckConstraint('CAST(locked AS NUMERIC) >= 0', name=op.f('ck_balances_locked_non_negative')),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_balances_bot_id_bots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('bot_id', 'asset', name=op.f('pk_balances'))
    )
    op.create_table('equity_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bot_id', sa.Integer(), nullable=False),
    sa.Column('ts', app.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('equity', DECIMAL, nullable=False),
    sa.Column('cash', DECIMAL, nullable=False),
    sa.Column('position_amount', DECIMAL, nullable=False),
    sa.Column('price', DECIMAL, nullable=False),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_equity_snapshots_bot_id_bots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_equity_snapshots')),
    sa.UniqueConstraint('bot_id', 'ts', name=op.f('uq_equity_snapshots_bot_id_ts'))
    )
    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bot_id', sa.Integer(), nullable=False),
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('type', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=12), server_default='open', nullable=False),
    sa.Column('amount', DECIMAL, nullable=True),
    sa.Column('quote_amount', DECIMAL, nullable=True),
    sa.Column('price', DECIMAL, nullable=True),
    sa.Column('reserved', DECIMAL, nullable=False),
    sa.Column('filled_amount', DECIMAL, nullable=True),
    sa.Column('average_price', DECIMAL, nullable=True),
    sa.Column('cost', DECIMAL, nullable=True),
    sa.Column('fee', DECIMAL, nullable=True),
    sa.Column('client_order_id', sa.String(length=64), nullable=False),
    sa.Column('fill_from', app.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', app.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('filled_at', app.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', app.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('bootstrap', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('state_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f('ck_orders_side')),
    sa.CheckConstraint("state IN ('open', 'filled', 'cancelled', 'rejected')", name=op.f('ck_orders_state')),
    sa.CheckConstraint("type IN ('market', 'limit')", name=op.f('ck_orders_type')),
    sa.CheckConstraint('CAST(reserved AS NUMERIC) >= 0', name=op.f('ck_orders_reserved_non_negative')),
    sa.CheckConstraint('amount IS NOT NULL OR quote_amount IS NOT NULL', name=op.f('ck_orders_sized')),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_orders_bot_id_bots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('client_order_id', name=op.f('uq_orders_client_order_id'))
    )
    op.create_index('ix_orders_bot_created', 'orders', ['bot_id', 'created_at'], unique=False)
    op.create_index('ix_orders_bot_state', 'orders', ['bot_id', 'state'], unique=False)
    op.create_table('positions',
    sa.Column('bot_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('base', sa.String(length=16), nullable=False),
    sa.Column('quote', sa.String(length=16), nullable=False),
    sa.Column('initial_capital', DECIMAL, nullable=False),
    sa.Column('amount', DECIMAL, nullable=False),
    sa.Column('cost_basis', DECIMAL, nullable=False),
    sa.Column('avg_entry_price', DECIMAL, nullable=True),
    sa.Column('realised_pnl', DECIMAL, nullable=False),
    sa.Column('fees_paid', DECIMAL, nullable=False),
    sa.Column('trip_pnl', DECIMAL, nullable=False),
    sa.Column('trip_fees', DECIMAL, nullable=False),
    sa.Column('opened_at', app.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('CAST(amount AS NUMERIC) >= 0', name=op.f('ck_positions_amount_non_negative')),
    sa.CheckConstraint('CAST(cost_basis AS NUMERIC) >= 0', name=op.f('ck_positions_cost_basis_non_negative')),
    sa.CheckConstraint('CAST(fees_paid AS NUMERIC) >= 0', name=op.f('ck_positions_fees_paid_non_negative')),
    sa.CheckConstraint('CAST(initial_capital AS NUMERIC) >= 0', name=op.f('ck_positions_initial_capital_non_negative')),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_positions_bot_id_bots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('bot_id', name=op.f('pk_positions'))
    )
    op.create_table('fills',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('bot_id', sa.Integer(), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('amount', DECIMAL, nullable=False),
    sa.Column('price', DECIMAL, nullable=False),
    sa.Column('cost', DECIMAL, nullable=False),
    sa.Column('fee', DECIMAL, nullable=False),
    sa.Column('fee_asset', sa.String(length=16), nullable=False),
    sa.Column('liquidity', sa.String(length=5), nullable=False),
    sa.Column('realised_pnl', DECIMAL, nullable=False),
    sa.Column('cost_basis_change', DECIMAL, nullable=False),
    sa.Column('closed_trade_pnl', DECIMAL, nullable=True),
    sa.Column('trade_opened_at', app.store.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('candle_ts', app.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('filled_at', app.store.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("liquidity IN ('maker', 'taker')", name=op.f('ck_fills_liquidity')),
    sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f('ck_fills_side')),
    sa.CheckConstraint('CAST(amount AS NUMERIC) >= 0', name=op.f('ck_fills_amount_non_negative')),
    sa.CheckConstraint('CAST(cost AS NUMERIC) >= 0', name=op.f('ck_fills_cost_non_negative')),
    sa.CheckConstraint('CAST(fee AS NUMERIC) >= 0', name=op.f('ck_fills_fee_non_negative')),
    sa.CheckConstraint('CAST(price AS NUMERIC) >= 0', name=op.f('ck_fills_price_non_negative')),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_fills_bot_id_bots'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_fills_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fills')),
    sa.UniqueConstraint('order_id', name=op.f('uq_fills_order_id'))
    )
    op.create_index('ix_fills_bot_id', 'fills', ['bot_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_fills_bot_id', table_name='fills')
    op.drop_table('fills')
    op.drop_table('positions')
    op.drop_index('ix_orders_bot_state', table_name='orders')
    op.drop_index('ix_orders_bot_created', table_name='orders')
    op.drop_table('orders')
    op.drop_table('equity_snapshots')
    op.drop_table('balances')
    op.drop_index('ix_pricing_snapshots_user', table_name='pricing_snapshots')
    op.drop_table('pricing_snapshots')
