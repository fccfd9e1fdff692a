"""Find published datasets by ``@handle/name`` or AT-URI, for :func:`atdata.load_dataset`.

Reading needs no account: the owner's handle is resolved to a DID, the DID to its
PDS (``did:plc`` through the PLC directory, ``$ATDATA_PLC_URL`` or
``https://plc.directory``), and the records are read there. ``$ATDATA_PDS_URL``
names the PDS asked first to resolve handles (default ``https://bsky.social``).

Example::

    index, entry = find_dataset("alice.bsky.social", "mnist")
    ds = index.dataset_for(entry)
    atdata.load_dataset("@alice.bsky.social/mnist", split="train")
"""

from __future__ import annotations

import os
from typing import Any

from atdata.atmosphere.client import AtmosphereClient
from atdata.atmosphere.index import AtmosphereIndex, AtmosphereIndexEntry

__all__ = ["decode_schema", "find_dataset", "get_dataset_entry", "reader_index"]


def reader_index(index: Any = None) -> AtmosphereIndex:
    """``index`` if it is an :class:`AtmosphereIndex`, else one over an anonymous client.

    The anonymous client uses ``$ATDATA_PDS_URL`` and ``$ATDATA_PLC_URL`` when set.
    """
    if isinstance(index, AtmosphereIndex):
        return index
    if index is not None:
        raise TypeError(
            f"index must be an AtmosphereIndex to read published datasets, not {type(index).__name__}"
        )
    client = AtmosphereClient(
        os.environ.get("ATDATA_PDS_URL") or None, plc_url=os.environ.get("ATDATA_PLC_URL") or None
    )
    return AtmosphereIndex(client)


def find_dataset(
    authority: str, name: str, *, index: Any = None
) -> tuple[AtmosphereIndex, AtmosphereIndexEntry]:
    """The newest dataset named ``name`` published by ``authority`` (a handle or DID).

    Lists every page of that account's dataset records on its own PDS;
    ``KeyError`` if none has this name.

    Example::

        index, entry = find_dataset("alice.bsky.social", "mnist")
        ds = index.dataset_for(entry)
    """
    idx = reader_index(index)
    did = idx.client.resolve_did(authority)
    return idx, idx.find_dataset(name, repo=did)


def get_dataset_entry(
    uri: str, *, index: Any = None
) -> tuple[AtmosphereIndex, AtmosphereIndexEntry]:
    """The dataset record at ``uri`` (``at://did/ac.foundation.dataset.record/rkey``).

    Example::

        index, entry = get_dataset_entry("at://did:plc:abc/ac.foundation.dataset.record/3k...")
    """
    idx = reader_index(index)
    return idx, idx.get_dataset(uri)


def decode_schema(uri: str, *, index: Any = None) -> type:
    """The sample type described by the schema record at ``uri``, rebuilt from the record.

    Example::

        FeatureSample = decode_schema("at://did:plc:abc/ac.foundation.dataset.sampleSchema/3k...")
    """
    return reader_index(index).decode_schema(uri)
