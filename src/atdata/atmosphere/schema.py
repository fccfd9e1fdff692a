"""Sample schemas as ``ac.foundation.dataset.sampleSchema`` records: publish, list, find, decode.

The record is the schema codec's record (:func:`atdata.schema.schema_record`) with
ATProto field-type tags, adjusted to the lexicon:

- ``name`` stays the class name (what seed-era atdata writes and reads);
- ``module`` holds the ``{module}.{class}`` identity, so a schema can be found
  again by identity and version (:meth:`SchemaLoader.find`);
- a field's ``default`` is JSON text (``"0.5"``, ``"\\"none\\""``), since records
  cannot hold floats;
- record keys are TIDs.

Decoding rebuilds a working type from the record alone; nothing is imported or
executed. Records without ``module`` (written by seed-era atdata) decode too.

Example::

    uri = SchemaPublisher(client).publish(ImageSample, version="1.0.0")
    Decoded = SchemaLoader(client).decode(uri)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from atdata._versions import FIRST_VERSION, latest_version, next_version
from atdata.atmosphere.records import (
    SCHEMA_COLLECTION,
    Record,
    RecordLoader,
    newest,
    timestamp,
)
from atdata.atmosphere.uri import AtUri
from atdata.errors import SchemaError
from atdata.schema import (
    ATPROTO_TYPE_PREFIX,
    SCHEMA_FORMAT_VERSION,
    schema_record,
    schema_to_type,
)

if TYPE_CHECKING:
    from atdata.atmosphere.client import AtmosphereClient

__all__ = [
    "SchemaLoader",
    "SchemaPublisher",
    "record_to_type",
    "schema_identity",
    "to_schema_record",
]


def schema_identity(sample_type: type) -> str:
    """The ``{module}.{class}`` identity recorded in a schema's ``module`` field.

    >>> from atdata import packable
    >>> @packable
    ... class Pair:
    ...     a: int
    >>> schema_identity(Pair).endswith(".Pair")
    True
    """
    return f"{sample_type.__module__}.{sample_type.__name__}"


def _map_defaults(fields: Any, convert: Any, where: str) -> Any:
    """``fields`` (a codec field list) with every ``default``, nested ones too, converted."""
    if not isinstance(fields, list):
        return fields
    out = []
    for f in fields:
        if not isinstance(f, Mapping):
            out.append(f)
            continue
        f = dict(f)
        if "default" in f:
            f["default"] = convert(f["default"], f"{where}, field {f.get('name')!r}")
        if isinstance(f.get("fieldType"), Mapping):
            f["fieldType"] = _map_type_defaults(f["fieldType"], convert, where)
        out.append(f)
    return out


def _map_type_defaults(ft: Mapping[str, Any], convert: Any, where: str) -> dict[str, Any]:
    ft = dict(ft)
    if "fields" in ft:  # a nested sample type
        ft["fields"] = _map_defaults(ft["fields"], convert, where)
    for key in ("items", "values"):
        if isinstance(ft.get(key), Mapping):
            ft[key] = _map_type_defaults(ft[key], convert, where)
    return ft


def _default_to_text(value: Any, where: str) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _default_from_text(text: Any, where: str) -> Any:
    if not isinstance(text, str):
        raise SchemaError(f"{where}: 'default' must be JSON text, not {type(text).__name__}")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        raise SchemaError(f"{where}: 'default' {text[:80]!r} is not JSON text") from None
    except RecursionError:
        raise SchemaError(f"{where}: 'default' is nested too deep") from None


def to_schema_record(
    sample_type: type,
    *,
    version: str,
    name: str | None = None,
    description: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``ac.foundation.dataset.sampleSchema`` record for a ``@packable`` type (not sent).

    >>> from atdata import packable
    >>> @packable
    ... class Scored:
    ...     score: float = 0.5
    >>> rec = to_schema_record(Scored, version="1.0.0")
    >>> rec["name"], rec["fields"][0]["default"]
    ('Scored', '0.5')
    """
    base = schema_record(
        sample_type, version=version, description=description, type_prefix=ATPROTO_TYPE_PREFIX
    )
    record: dict[str, Any] = {
        "$type": SCHEMA_COLLECTION,
        "name": name if name is not None else base["name"],
        "version": version,
        "module": base["sampleType"],
        "fields": _map_defaults(base["fields"], _default_to_text, base["name"]),
        "createdAt": timestamp(),
    }
    if base.get("description"):
        record["description"] = base["description"]
    if metadata is not None:
        record["metadata"] = dict(metadata)
    return record


def record_to_type(record: Mapping[str, Any], *, uri: str | None = None) -> type:
    """A working ``@packable`` type rebuilt from a sampleSchema record (nothing is executed).

    Raises :class:`~atdata.SchemaError` naming ``uri`` for a record that cannot be decoded.
    """
    where = uri or f"schema {record.get('name')!r}"
    try:
        fields = _map_defaults(copy.deepcopy(record.get("fields")), _default_from_text, where)
        codec: dict[str, Any] = {
            "name": record.get("name"),
            "version": record.get("version", ""),
            "fields": fields,
        }
        if isinstance(record.get("description"), str):
            codec["description"] = record["description"]
        identity = record.get("module")
        if identity is not None:
            # Written by this atdata: dtypes are exact; the class name is the identity's.
            codec["sampleType"] = identity
            codec["atdataSchemaVersion"] = SCHEMA_FORMAT_VERSION
            if isinstance(identity, str):
                codec["name"] = identity.rpartition(".")[2]
        return schema_to_type(codec)
    except SchemaError as exc:
        if uri is None:
            raise
        raise SchemaError(f"{uri}: {exc}") from None


class SchemaPublisher:
    """Publish sample types as ``ac.foundation.dataset.sampleSchema`` records.

    Example::

        uri = SchemaPublisher(client).publish(ImageSample, version="1.0.0",
                                              description="Images with labels")
        print(uri)            # at://did:plc:.../ac.foundation.dataset.sampleSchema/3k...
    """

    def __init__(self, client: AtmosphereClient) -> None:
        self.client = client

    def publish(
        self,
        sample_type: type,
        *,
        name: str | None = None,
        version: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        rkey: str | None = None,
    ) -> AtUri:
        """Create a schema record for ``sample_type``; return its AT-URI (with CID).

        ``name`` defaults to the class name, ``description`` to its docstring;
        ``metadata`` is a free-form object (integers, not floats). The record is
        checked against the lexicon before it is sent. Without ``version``, our
        latest schema of this type is returned when its fields are the type's;
        otherwise the next patch version is published (``1.0.0`` first).
        """
        if version is None:
            latest = SchemaLoader(self.client).latest(sample_type)
            fields = to_schema_record(sample_type, version=FIRST_VERSION)["fields"]
            if latest is not None and latest.get("fields") == fields:
                return latest.at_uri
            version = next_version(latest.get("version") if latest is not None else None)
        record = to_schema_record(
            sample_type, version=version, name=name, description=description, metadata=metadata
        )
        return self.client.create_record(SCHEMA_COLLECTION, record, rkey=rkey)

    def find_or_publish(
        self,
        sample_type: type,
        *,
        version: str = "1.0.0",
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AtUri:
        """Our newest schema with this type's identity, version and fields, else a new one.

        Example::

            uri = SchemaPublisher(client).find_or_publish(FeatureSample, version="1.0.0")
        """
        record = to_schema_record(
            sample_type, version=version, description=description, metadata=metadata
        )
        found = SchemaLoader(self.client).find(record["module"], version, fields=record["fields"])
        if found is not None:
            return found
        return self.client.create_record(SCHEMA_COLLECTION, record)


class SchemaLoader(RecordLoader):
    """Read ``ac.foundation.dataset.sampleSchema`` records, ours or any account's.

    Example::

        loader = SchemaLoader(client)
        for schema in loader.list_all(limit=10):
            print(schema.uri, schema["name"], schema["version"])
        Decoded = loader.decode(schema.uri)
    """

    collection = SCHEMA_COLLECTION

    def find(
        self,
        identity: str,
        version: str,
        repo: str | None = None,
        *,
        fields: list[Any] | None = None,
    ) -> AtUri | None:
        """The newest schema with ``module == identity`` and this version (and ``fields``).

        Scans every page of ``repo`` (default: ours). ``identity`` is
        ``{module}.{class}`` (see :func:`schema_identity`).

        Example::

            uri = SchemaLoader(client).find("mypkg.samples.ImageSample", "1.0.0")
        """
        best = newest(
            r
            for r in self.iter_all(repo=repo)
            if r.get("module") == identity
            and r.get("version") == version
            and (fields is None or r.get("fields") == fields)
        )
        return best.at_uri if best is not None else None

    def latest(self, sample_type: type, repo: str | None = None) -> Record | None:
        """The schema of ``sample_type`` with the greatest version in ``repo`` (default: ours).

        A record is this type's when its ``module`` is the type's identity, or,
        written by the existing atdata (no ``module``), when its ``name`` is the
        class name. Of several records with that version, the newest.

        Example::

            record = SchemaLoader(client).latest(ImageSample)
        """
        identity = schema_identity(sample_type)
        mine = [
            r
            for r in self.iter_all(repo=repo)
            if r.get("module") == identity
            or ("module" not in r and r.get("name") == sample_type.__name__)
        ]
        top = latest_version(v for r in mine if isinstance(v := r.get("version"), str))
        if top is None:
            return None
        return newest(r for r in mine if r.get("version") == top)

    def decode(self, uri: str | AtUri) -> type:
        """The sample type described by the schema at ``uri``, rebuilt from the record."""
        record = self.get(uri)
        return record_to_type(record, uri=record.uri)
