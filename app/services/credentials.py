"""Exchange API credentials, encrypted at rest.

Key, secret, passphrase and uid travel together in one Fernet token; the row keeps in clear
only the exchange, a label and the last four characters of the key. Nothing here logs or
returns a secret: `load_secrets` is for the code that signs exchange requests.

The exchange ids are ccxt's (a snapshot, checked against the installed ccxt by a test, so
that validating a request does not import ccxt into the web worker).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationFailed
from app.services.audit import record_audit
from app.store.crypto import (
    CredentialSecrets,
    DecryptionFailed,
    decrypt_credential,
    encrypt_json,
    rotate,
)
from app.store.models.accounts import ExchangeCredential

# ccxt 4.5.90 `ccxt.exchanges`.
_CCXT_IDS = """
    alpaca apex aster backpack bequant bigone binance binancecoinm binanceus binanceusdm bingx
    bit2c bitbank bitbns bitfinex bitflyer bitget bithumb bitopro bitrue bitso bitstamp
    bitteam bittrade bitvavo blockchaincom blofin btcbox btcmarkets btcturk btse bullish bybit
    bybiteu bybitid bydfi cex coinbase coinbaseexchange coinbaseinternational coincheck
    coinmate coinone coinsph coinspot cryptocom cryptomus deepcoin delta deribit derive
    digifinex dydx extended fmfwio foxbit gate gateeu gemini grvt hashkey hibachi hitbtc
    hollaex htx hyperliquid independentreserve indodax kraken krakenfutures kucoin
    kucoinfutures latoken lbank lighter luno mercado mexc modetrade mudrex myokx nado ndax okx
    okxus onetrading p2b pacifica paradex paymium phemex poloniex polymarket revolutx
    tokocrypto toobit upbit weex whitebit woo woofipro xt zaif zebpay
"""
CCXT_EXCHANGES = frozenset(_CCXT_IDS.split())
# ccxt's `requiredCredentials` beyond apiKey and secret, where there are any.
CCXT_EXTRA_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "apex": ("password",),
    "aster": ("privateKey",),
    "bitget": ("password",),
    "blofin": ("password",),
    "coinbaseexchange": ("password",),
    "coinmate": ("uid",),
    "cryptomus": ("uid",),
    "deepcoin": ("password",),
    "derive": ("privateKey", "walletAddress"),
    "extended": ("privateKey",),
    "grvt": ("privateKey",),
    "hibachi": ("accountId", "privateKey"),
    "hyperliquid": ("privateKey", "walletAddress"),
    "kucoin": ("password",),
    "kucoinfutures": ("password",),
    "lighter": ("privateKey",),
    "modetrade": ("accountId",),
    "myokx": ("password",),
    "nado": ("privateKey", "walletAddress"),
    "ndax": ("login", "password", "uid"),
    "okx": ("password",),
    "okxus": ("password",),
    "pacifica": ("privateKey",),
    "paradex": ("privateKey", "walletAddress"),
    "polymarket": ("privateKey",),
    "revolutx": ("privateKey",),
    "weex": ("password",),
    "woofipro": ("accountId",),
}
SUPPORTED_EXTRAS = {"password": "passphrase", "uid": "uid"}


@dataclass(frozen=True)
class NewCredential:
    exchange: str
    label: str
    api_key: str
    secret: str
    passphrase: str | None = None
    uid: str | None = None


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field}: {message}", details=[{"loc": [field], "msg": message, "type": "value_error"}]
    )


def check_exchange(new: NewCredential) -> None:
    """The exchange is ccxt's and gets every credential it needs from this form."""
    if new.exchange not in CCXT_EXCHANGES:
        raise _invalid("exchange", f"unknown exchange id '{new.exchange[:50]}'")
    extras = CCXT_EXTRA_CREDENTIALS.get(new.exchange, ())
    unsupported = [name for name in extras if name not in SUPPORTED_EXTRAS]
    if unsupported:
        raise _invalid(
            "exchange",
            f"{new.exchange} needs credentials this form does not take: {', '.join(unsupported)}",
        )
    given = {"passphrase": new.passphrase, "uid": new.uid}
    for extra in extras:
        field = SUPPORTED_EXTRAS[extra]
        if not given[field]:
            raise _invalid(field, f"{new.exchange} requires a {field}")


def add_credential(
    session: Session, user_id: int, new: NewCredential, *, ip: str | None = None
) -> ExchangeCredential:
    check_exchange(new)
    bundle = {"api_key": new.api_key, "secret": new.secret}
    if new.passphrase:
        bundle["passphrase"] = new.passphrase
    if new.uid:
        bundle["uid"] = new.uid
    if session.scalar(
        select(ExchangeCredential.id).where(
            ExchangeCredential.user_id == user_id, ExchangeCredential.label == new.label
        )
    ):
        raise Conflict("you already have credentials with this label", code="label_taken")
    row = ExchangeCredential(
        user_id=user_id,
        exchange=new.exchange,
        label=new.label,
        key_hint=new.api_key[-4:],
        ciphertext=encrypt_json(bundle),
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("you already have credentials with this label", code="label_taken") from None
    _audit(session, "credentials.added", row, ip)
    return row


def _audit(session: Session, action: str, row: ExchangeCredential, ip: str | None) -> None:
    """Audit a change of the user's own credentials (never the secrets themselves)."""
    record_audit(
        session,
        action,
        actor_user_id=row.user_id,
        target_user_id=row.user_id,
        details={"credential_id": row.id, "exchange": row.exchange, "label": row.label},
        ip=ip,
    )


def list_credentials(session: Session, user_id: int) -> list[ExchangeCredential]:
    return list(
        session.scalars(
            select(ExchangeCredential)
            .where(ExchangeCredential.user_id == user_id)
            .order_by(ExchangeCredential.id)
        )
    )


def get_credential(session: Session, user_id: int, credential_id: int) -> ExchangeCredential:
    """The user's own credential; another user's answers exactly like a missing one."""
    row = session.get(ExchangeCredential, credential_id)
    if row is None or row.user_id != user_id:
        raise NotFound("exchange credentials not found")
    return row


def delete_credential(
    session: Session, user_id: int, credential_id: int, *, ip: str | None = None
) -> None:
    row = get_credential(session, user_id, credential_id)
    _audit(session, "credentials.deleted", row, ip)
    session.delete(row)
    session.flush()


def load_secrets(session: Session, user_id: int, credential_id: int) -> CredentialSecrets:
    """The owner's credential, decrypted; another user's id answers 404."""
    return decrypt_credential(get_credential(session, user_id, credential_id).ciphertext)


def next_credential_batch(
    session: Session, *, after_id: int, limit: int = 200
) -> list[ExchangeCredential]:
    """The next rows in id order (key rotation walks the table one batch per transaction)."""
    return list(
        session.scalars(
            select(ExchangeCredential)
            .where(ExchangeCredential.id > after_id)
            .order_by(ExchangeCredential.id)
            .limit(limit)
        )
    )


def reencrypt_batch(session: Session, rows: list[ExchangeCredential]) -> tuple[int, list[int]]:
    """Re-encrypt rows under the newest key. Returns (re-encrypted, ids no key could open)."""
    done, unreadable = 0, []
    for row in rows:
        try:
            row.ciphertext = rotate(row.ciphertext)
            done += 1
        except DecryptionFailed:
            unreadable.append(row.id)
    session.flush()
    return done, unreadable
