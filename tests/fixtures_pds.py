"""Fixtures that start the real ATProto stack: the reference PDS and an in-memory PLC.

The stack is started once per session on free 127.0.0.1 ports (see
``atdata.stack.pds``) and each test gets fresh accounts, so tests never see each
other's records. If the PDS is not installed, the tests FAIL with the command to
install it (``python -m atdata.stack.pds install``): nothing is skipped.
Tests that use these fixtures get the ``pds`` marker.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from atdata.stack._base import LocalServer

PDS_FIXTURES = {"pds_server", "pds_account", "pds_account_factory", "pds_client", "appview_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use the PDS, so ``-m "not pds"`` works."""
    for item in items:
        if set(getattr(item, "fixturenames", ())) & PDS_FIXTURES:
            item.add_marker("pds")


@pytest.fixture(scope="session")
def pds_server() -> Iterator[LocalServer]:
    """The session's PDS + PLC (``.url`` = PDS_URL, ``.env`` with PLC_URL and the rest)."""
    from atdata.stack.pds import PDSNotInstalledError, start_pds

    try:
        server = start_pds()
    except PDSNotInstalledError as exc:
        pytest.fail(f"cannot start the ATProto PDS test server: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def pds_account_factory(pds_server: LocalServer) -> Callable[[], dict[str, str]]:
    """Call it to create another fresh account on the test PDS (see ``pds_account``)."""
    from atdata.stack.pds import create_account

    def make() -> dict[str, str]:
        handle = f"t{secrets.token_hex(5)}.test"
        password = secrets.token_urlsafe(18)
        account = create_account(pds_server, handle, password)
        return {
            "handle": account["handle"],
            "password": password,
            "did": account["did"],
            "pds_url": pds_server.env["PDS_URL"],
            "plc_url": pds_server.env["PLC_URL"],
        }

    return make


@pytest.fixture
def pds_account(pds_account_factory: Callable[[], dict[str, str]]) -> dict[str, str]:
    """A fresh account: ``handle`` (``t<hex>.test``), ``password``, ``did``, ``pds_url``, ``plc_url``."""
    return pds_account_factory()


@pytest.fixture
def pds_client(pds_account: dict[str, str]) -> Iterator[Any]:
    """An :class:`~atdata.atmosphere.AtmosphereClient` logged in as ``pds_account``."""
    from atdata.atmosphere import AtmosphereClient

    client = AtmosphereClient(pds_account["pds_url"], plc_url=pds_account["plc_url"])
    client.login(pds_account["handle"], pds_account["password"])
    yield client
    client.close()


@pytest.fixture(scope="session")
def appview_server(pds_server: LocalServer) -> Iterator[LocalServer]:
    """An AppView (``atdata appview serve``) following the session's PDS (``.url``)."""
    from atdata.stack.appview import start_appview

    server = start_appview([pds_server.url], plc_url=pds_server.env["PLC_URL"])
    yield server
    server.stop()
