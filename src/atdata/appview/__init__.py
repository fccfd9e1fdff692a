"""The AppView: an index of every publisher's datasets, schemas and lenses, with search.

It follows ``com.atproto.sync.subscribeRepos`` of one or more hosts (a relay, or
PDSes directly), verifies every commit against the repository's signing key,
keeps the ``ac.foundation.dataset.*`` records that pass the shipped lexicons,
and serves XRPC queries (``ac.foundation.dataset.searchDatasets`` and the rest,
each with a lexicon in ``atdata/appview/lexicons``) over HTTP.

Needs the ``appview`` extra: ``pip install 'atdata[appview]'``. Run one with
``atdata appview serve --host URL --db sqlite:////path/appview.db``, or::

    from atdata.appview import AppView
    view = AppView(["http://localhost:2583"], "sqlite:////tmp/appview.db")
    # uvicorn.run(view.app, host="127.0.0.1", port=2590)

Clients use :class:`atdata.atmosphere.AppViewClient`.
"""

from atdata.appview._open import open_store
from atdata.appview._query import BadParam
from atdata.appview._repo import RepoVerificationError
from atdata.appview._server import query_lexicons
from atdata.appview._service import AppView, default_db_url, serve
from atdata.appview._store import AppViewStore, StoreError

__all__ = [
    "AppView",
    "AppViewStore",
    "BadParam",
    "RepoVerificationError",
    "StoreError",
    "default_db_url",
    "open_store",
    "query_lexicons",
    "serve",
]
