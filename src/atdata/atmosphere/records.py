"""Reading atdata's records safely: lexicon-checked values that remember their URI and CID.

Every record read from a repository (ours or anyone's) is checked against the
shipped lexicon of its collection before it is used; a record that does not fit
raises :class:`InvalidRecordError` naming its URI (``get``), or is skipped with a
warning naming it (listings), so one bad record in a foreign repository cannot
break a listing. Nothing in a record is ever executed.

    >>> rec = Record({"name": "mnist"}, uri="at://did:plc:abc/ac.foundation.dataset.record/3k2a")
    >>> rec["name"], rec.uri
    ('mnist', 'at://did:plc:abc/ac.foundation.dataset.record/3k2a')
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from atdata.atmosphere._errors import InvalidRecordError
from atdata.atmosphere._lexicon import LexiconValidationError, validate_record
from atdata.atmosphere.uri import AtUri

if TYPE_CHECKING:
    from atdata.atmosphere.client import AtmosphereClient

__all__ = [
    "DATASET_COLLECTION",
    "LENS_COLLECTION",
    "SCHEMA_COLLECTION",
    "InvalidRecordError",
    "Record",
    "RecordLoader",
    "checked_record",
    "fetch_record",
    "iter_records",
    "newest",
    "timestamp",
]

SCHEMA_COLLECTION = "ac.foundation.dataset.sampleSchema"
DATASET_COLLECTION = "ac.foundation.dataset.record"
LENS_COLLECTION = "ac.foundation.dataset.lens"


class Record(dict[str, Any]):
    """A record's value, as a plain dict, that also carries its ``uri`` and ``cid``.

    The dict holds exactly the stored record (``$type`` included), so it can be
    compared, printed or re-published as is; ``uri`` and ``cid`` are attributes.

    >>> Record({"$type": "x.y.z"}, uri="at://did:plc:a/x.y.z/1", cid=None).cid is None
    True
    """

    __slots__ = ("cid", "uri")

    def __init__(self, value: Mapping[str, Any], *, uri: str, cid: str | None = None) -> None:
        super().__init__(value)
        self.uri: str = uri
        self.cid: str | None = cid

    @property
    def at_uri(self) -> AtUri:
        """:attr:`uri` parsed, carrying :attr:`cid`."""
        return AtUri.parse(self.uri).with_cid(self.cid)

    def __repr__(self) -> str:
        return f"Record({self.uri!r}, {dict.__repr__(self)})"

    def __reduce__(self) -> Any:
        return (_rebuild_record, (dict(self), self.uri, self.cid))


def _rebuild_record(value: dict[str, Any], uri: str, cid: str | None) -> Record:
    return Record(value, uri=uri, cid=cid)


def timestamp() -> str:
    """The current UTC time as an ATProto datetime, e.g. ``2026-01-26T12:00:00.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def checked_record(entry: Mapping[str, Any], collection: str) -> Record:
    """A ``{"uri", "cid", "value"}`` entry as a :class:`Record`, checked against the lexicon."""
    uri = str(entry.get("uri"))
    value = entry.get("value")
    if not isinstance(value, Mapping):
        raise InvalidRecordError(f"{uri}: the record is not a JSON object", target=uri)
    try:
        validate_record(collection, value)
    except LexiconValidationError as exc:
        raise InvalidRecordError(
            f"{uri}: not a valid {collection} record ({exc})", target=uri
        ) from None
    return Record(value, uri=uri, cid=entry.get("cid"))


def fetch_record(client: AtmosphereClient, uri: str | AtUri, collection: str) -> Record:
    """Read the record at ``uri`` from its owner's PDS and check it is a valid ``collection``.

    Raises :class:`InvalidRecordError` for a URI of another collection or a record
    that does not fit the lexicon, :class:`~atdata.atmosphere.RecordNotFoundError`
    when there is no such record.

    Example::

        rec = fetch_record(client, "at://did:plc:abc/ac.foundation.dataset.record/3k2a",
                           "ac.foundation.dataset.record")
    """
    parsed = AtUri.parse(uri)
    if parsed.collection != collection:
        raise InvalidRecordError(
            f"{parsed}: is a {parsed.collection} record, not {collection}", target=str(parsed)
        )
    return checked_record(client.get_record_entry(parsed), collection)


def iter_records(
    client: AtmosphereClient, collection: str, *, repo: str | None = None
) -> Iterator[Record]:
    """Every valid record of ``collection`` in ``repo`` (default: ours), page after page.

    Invalid records are skipped with a warning that names them.

    Example::

        names = [r["name"] for r in iter_records(client, "ac.foundation.dataset.record")]
    """
    for entry in client.iter_records(collection, repo=repo):
        try:
            yield checked_record(entry, collection)
        except InvalidRecordError as exc:
            warnings.warn(f"skipped: {exc}", stacklevel=2)


def _age_key(record: Record) -> tuple[datetime, str]:
    text = record.get("createdAt")
    try:
        when = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        when = None
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    rkey = record.uri.rsplit("/", 1)[-1]  # TIDs sort by time: the tie-breaker
    return (when or datetime.min.replace(tzinfo=UTC), rkey)


def newest(records: Iterable[Record]) -> Record | None:
    """The record with the latest ``createdAt`` (then the greatest record key), or None.

    >>> a = Record({"createdAt": "2026-01-01T00:00:00Z"}, uri="at://did:plc:a/x.y.z/3kaa")
    >>> b = Record({"createdAt": "2026-02-01T00:00:00+00:00"}, uri="at://did:plc:a/x.y.z/3kab")
    >>> newest([a, b]) is b
    True
    """
    return max(records, key=_age_key, default=None)


class RecordLoader:
    """Reads the records of one collection, ours or any account's (the loaders' base).

    ``get`` checks a record against the collection's lexicon; ``iter_all`` and
    ``list_all`` go through every page, newest first, keeping each record's URI.
    """

    collection: ClassVar[str]

    def __init__(self, client: AtmosphereClient) -> None:
        self.client = client

    def get(self, uri: str | AtUri) -> Record:
        """The record at ``uri``, checked against the lexicon."""
        return fetch_record(self.client, uri, self.collection)

    def iter_all(self, *, repo: str | None = None) -> Iterator[Record]:
        """Every record of ``repo`` (a DID or handle; default: ours), newest first."""
        return iter_records(self.client, self.collection, repo=repo)

    def list_all(self, limit: int | None = None, *, repo: str | None = None) -> list[Record]:
        """Records of ``repo`` (default: ours), newest first, every page up to ``limit``."""
        if limit is not None and limit <= 0:
            return []
        return list(itertools.islice(self.iter_all(repo=repo), limit))
