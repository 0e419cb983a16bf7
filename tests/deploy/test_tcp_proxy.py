"""The outage proxy: forwards while started, drops live connections on stop, comes back on
the same port (other tests rely on it to simulate a database outage)."""

from __future__ import annotations

import psycopg2
import pytest

from tests.support.databases import POSTGRES_ADMIN_URL
from tests.support.tcp_proxy import TcpProxy


def _select_one(url: str) -> int:
    conn = psycopg2.connect(url, connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_proxy_forwards_stops_and_restarts_on_the_same_port() -> None:
    admin = f"{POSTGRES_ADMIN_URL}/postgres"
    with TcpProxy.for_url(admin) as proxy:
        url = proxy.proxied_url(admin)
        assert f":{proxy.port}/" in url
        assert _select_one(url) == 1

        live = psycopg2.connect(url, connect_timeout=3)
        port = proxy.port
        proxy.stop()
        assert not proxy.running
        with pytest.raises(psycopg2.OperationalError):
            _select_one(url)
        with pytest.raises(psycopg2.Error), live.cursor() as cur:
            cur.execute("SELECT 1")
        live.close()

        proxy.start()
        assert proxy.port == port
        assert _select_one(url) == 1
    assert not proxy.running
