"""The AppView service: a store, one follower per host, and the HTTP application."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from atdata import __version__
from atdata.appview._identity import Identities
from atdata.appview._ingest import HostFollower, Ingester
from atdata.appview._open import open_store
from atdata.appview._server import build_app
from atdata.appview._store import AppViewStore

__all__ = ["AppView", "default_db_url", "serve"]

log = logging.getLogger("atdata.appview")


def default_db_url() -> str:
    """``sqlite:////$ATDATA_HOME/appview.db`` (``ATDATA_HOME`` defaults to ``~/.atdata``)."""
    home = Path(os.environ.get("ATDATA_HOME") or Path.home() / ".atdata").expanduser().absolute()
    return f"sqlite:///{home / 'appview.db'}"


class AppView:
    """Follow ``hosts`` into ``store`` and answer queries (see :attr:`app`).

    The web pages are served next to the XRPC queries. Run it with
    ``uvicorn.run(view.app, host="127.0.0.1", port=2590)`` (or :func:`serve`); the
    application's lifespan starts and stops the followers.

    >>> import tempfile
    >>> from starlette.testclient import TestClient
    >>> view = AppView(["http://127.0.0.1:2583"], f"sqlite:///{tempfile.mkdtemp()}/appview.db")
    >>> TestClient(view.app).get("/xrpc/ac.foundation.dataset.searchDatasets?q=cats").json()
    {'datasets': []}
    >>> view.store.close()
    """

    store: AppViewStore
    identities: Identities
    ingester: Ingester
    followers: list[HostFollower]
    service_did: str | None
    public_url: str | None
    version: str
    started: float

    def __init__(
        self,
        hosts: Sequence[str],
        store: AppViewStore | str | None = None,
        *,
        plc_url: str | None = None,
        service_did: str | None = None,
        public_url: str | None = None,
    ) -> None:
        self.store = (
            open_store(store or default_db_url()) if not isinstance(store, AppViewStore) else store
        )
        self.identities = Identities(plc_url)
        self.ingester = Ingester(self.store, self.identities)
        self.followers = [HostFollower(self.ingester, h) for h in dict.fromkeys(hosts)]
        self.service_did = service_did
        self.public_url = public_url
        self.version = __version__
        self.started = time.time()
        self._app: Starlette | None = None

    @property
    def app(self) -> Starlette:
        """The ASGI application (Starlette); its lifespan starts and stops the followers."""
        if self._app is None:
            self._app = build_app(self)
        return self._app

    def start(self) -> None:
        """Start following every host."""
        for follower in self.followers:
            follower.start()

    def stop(self) -> None:
        """Stop following and release connections."""
        for follower in self.followers:
            follower.stop()
        self.ingester.close()
        self.identities.close()
        self.store.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """Starlette lifespan: followers run while the server does."""
        self.start()
        try:
            yield
        finally:
            self.stop()

    def describe(self) -> dict[str, Any]:
        """Record counts, hosts with cursor and lag, and the drop counters."""
        stored = self.store.hosts()
        hosts = []
        for f in self.followers:
            state = stored.get(f.host, {})
            hosts.append(
                {
                    "host": f.host,
                    "connected": f.connected,
                    "cursor": state.get("cursor"),
                    "backfilled": bool(state.get("backfilled")),
                    "lastEventAt": f.last_event,
                    "lagSeconds": f.lag,
                    "counters": dict(f.counters),
                }
            )
        return {
            "did": self.service_did,
            "version": self.version,
            "uptimeSeconds": round(time.time() - self.started, 3),
            "counts": self.store.counts(),
            "hosts": hosts,
            "dropped": dict(self.ingester.counters),
        }


def serve(
    hosts: Sequence[str],
    db: str | None = None,
    *,
    listen: str = "127.0.0.1:2590",
    plc_url: str | None = None,
    service_did: str | None = None,
    public_url: str | None = None,
) -> None:
    """Run an AppView in the foreground on ``listen`` (``HOST:PORT``) until interrupted."""
    import uvicorn

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, got {listen!r}")
    view = AppView(hosts, db, plc_url=plc_url, service_did=service_did, public_url=public_url)
    uvicorn.run(view.app, host=host.strip("[]"), port=int(port), log_level="warning")
