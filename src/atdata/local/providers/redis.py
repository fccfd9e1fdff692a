"""A shared index in Redis, in the seed-era key layout plus secondary indexes.

Keys (``{ns}`` is the optional namespace, empty by default):

- ``{ns}LocalDatasetEntry:{cid}``: HASH ``name, schema_ref, data_urls (msgpack),
  cid, metadata (msgpack), shards (msgpack), created_at`` — the existing
  atdata's layout with two fields added;
- ``{ns}LocalSchema:{Name}@{version}``: STRING, the schema record as JSON;
- ``{ns}atdata:entry-cids``: HASH name → CID (name lookups);
- ``{ns}atdata:entry-names``: ZSET of names, score 0 (listing in name order);
- ``{ns}atdata:schema-refs``: ZSET of ``Name@version`` (schema listing).

No lookup or listing of an indexed name scans the key space;
:meth:`RedisProvider.reindex` does, when the provider is made and when a name
is not found, to index data written by the seed-era library (which writes only
the entry and schema keys). Entry writes run as one
Lua script, so the entry and its index keys change together; a name lookup is
one script too (one round trip). The scripts address keys they compute, so
this layout is for a single Redis server, not Redis Cluster.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

import msgpack

from atdata.local.entry import LocalDatasetEntry
from atdata.local.providers.base import (
    PAGE,
    EntryExistsError,
    IndexBackendError,
    IndexProvider,
    parse_schema_json,
)

__all__ = ["RedisProvider"]

# KEYS: entry-cids hash, entry-names zset, new entry key.
# ARGV: name, cid, overwrite flag, entry key prefix, then field/value pairs.
# Returns 1 when stored, 0 when the same entry exists, the held CID on a name clash.
_PUT_ENTRY = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and redis.call('HGET', ARGV[4] .. held, 'name') ~= ARGV[1] then
  held = false  -- the indexed entry vanished (or now holds another name): the name is free
end
if held then
  if held == ARGV[2] then return 0 end
  if ARGV[3] ~= '1' then return held end
  redis.call('DEL', ARGV[4] .. held)
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], unpack(ARGV, 5))
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
"""

# KEYS: entry-cids hash. ARGV: name, entry key prefix, then the field names to read.
# One round trip: the CID and the entry's fields.
_GET_BY_NAME = """
local cid = redis.call('HGET', KEYS[1], ARGV[1])
if not cid then return false end
return {cid, redis.call('HMGET', ARGV[2] .. cid, unpack(ARGV, 3))}
"""
# KEYS: entry-names zset, entry-cids hash. ARGV: lower bound, page size, entry key prefix,
# then the field names. One round trip per page, returned as one msgpack blob (parsed in C):
# [last name, [[cid, [field values]], ...]].
_PAGE = """
local names = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, name in ipairs(names) do
  local cid = redis.call('HGET', KEYS[2], name)
  if cid then
    out[#out + 1] = {name, cid, redis.call('HMGET', ARGV[3] .. cid, unpack(ARGV, 4))}
  end
end
return cmsgpack.pack({names[#names] or false, #names, out})
"""
_FIELDS = ("name", "schema_ref", "data_urls", "cid", "metadata", "shards", "created_at")


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the Redis index needs redis-py: pip install 'atdata[redis]'") from exc
    return redis


def _describe(client: Any) -> str:
    kw = client.connection_pool.connection_kwargs
    if kw.get("path"):
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


class RedisProvider(IndexProvider):
    """Entries and schemas in Redis.

    ``client`` is a ``redis.Redis`` or a ``redis://`` URL; ``namespace`` is
    prepended to every key, so several indexes can share one database. A
    client with ``decode_responses=True`` is fine (a bytes client is made from
    its settings). The server is pinged at once, so a wrong address fails here.

    Example (needs a server)::

        provider = RedisProvider("redis://redis.example:6379/0", namespace="team-a:")
        index = Index(provider)
    """

    def __init__(self, client: Any, *, namespace: str = "") -> None:
        redis = _redis()
        self._errors_types = (redis.exceptions.RedisError,)
        if isinstance(client, str):
            client = redis.Redis.from_url(client)
        if client.get_encoder().decode_responses:
            pool = client.connection_pool
            kwargs = {**pool.connection_kwargs, "decode_responses": False}
            client = redis.Redis(
                connection_pool=redis.ConnectionPool(
                    connection_class=pool.connection_class, **kwargs
                )
            )
        self.client: Any = client
        self.namespace: str = namespace
        self.location: str = f"Redis index {_describe(client)}" + (
            f" (namespace {namespace!r})" if namespace else ""
        )
        self._cids = f"{namespace}atdata:entry-cids"
        self._names = f"{namespace}atdata:entry-names"
        self._schema_refs = f"{namespace}atdata:schema-refs"
        self._entry_prefix = f"{namespace}LocalDatasetEntry:"
        self._schema_prefix = f"{namespace}LocalSchema:"
        self._put = client.register_script(_PUT_ENTRY)
        self._get_by_name = client.register_script(_GET_BY_NAME)
        self._page = client.register_script(_PAGE)
        with self._errors():
            client.ping()
        self.reindex()  # entries and schemas the seed-era library wrote meanwhile

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._errors_types as exc:
            raise IndexBackendError(f"{self.location}: {type(exc).__name__}: {exc}") from None

    # ---------------------------------------------------------------- entries

    def put_entries(self, entries: Iterable[LocalDatasetEntry], *, overwrite: bool = False) -> None:
        items = list(entries)
        clashes: list[tuple[str, str]] = []
        with self._errors():
            for start in range(0, len(items), PAGE):
                chunk = items[start : start + PAGE]
                pipe = self.client.pipeline(transaction=False)
                for entry in chunk:
                    args: list[Any] = [entry.name, entry.cid, "1" if overwrite else "0"]
                    args.append(self._entry_prefix)
                    for key, value in entry.to_fields().items():
                        args += [key, value]
                    self._put(
                        keys=[self._cids, self._names, self._entry_prefix + entry.cid],
                        args=args,
                        client=pipe,
                    )
                results = pipe.execute()
                clashes += [
                    (e.name, r.decode()) for e, r in zip(chunk, results) if isinstance(r, bytes)
                ]
        if clashes:
            name, cid = clashes[0]
            raise EntryExistsError(name, cid, self.location)

    def _entry(
        self, cid: str | bytes, values: list[Any], name: str | bytes | None = None
    ) -> LocalDatasetEntry | None:
        """The entry from its ``_FIELDS`` values; None if the hash does not exist.

        With ``name`` (the indexed name), also None when the hash now holds
        another name: the seed-era library rewrites an entry's hash when the
        same data is indexed under a second name.
        """
        if values[0] is None:
            return None
        if name is not None:
            want = name.encode() if isinstance(name, str) else name
            if values[0] != want:
                return None
        fields = {k: v for k, v in zip(_FIELDS, values) if v is not None}
        where = f"{self.location}, entry {cid.decode() if isinstance(cid, bytes) else cid}"
        return LocalDatasetEntry.from_fields(fields, where)

    def get_entry(self, cid: str) -> LocalDatasetEntry:
        with self._errors():
            values = self.client.hmget(self._entry_prefix + cid, _FIELDS)
        found = self._entry(cid, values)
        if found is None:
            raise KeyError(f"no dataset entry with CID {cid!r} in {self.location}")
        return found

    def get_entry_by_name(self, name: str) -> LocalDatasetEntry:
        entry = self._lookup(name)
        if entry is None and self.reindex(entries_only=True):
            entry = self._lookup(name)  # written by the seed-era library since
        if entry is None:
            raise KeyError(f"no dataset named {name!r} in {self.location}")
        return entry

    def _lookup(self, name: str) -> LocalDatasetEntry | None:
        with self._errors():
            found = self._get_by_name(keys=[self._cids], args=[name, self._entry_prefix, *_FIELDS])
        return self._entry(found[0], found[1], name) if found else None

    def iter_entries(self) -> Iterator[LocalDatasetEntry]:
        low: bytes = b"-"
        while True:
            with self._errors():
                blob = self._page(
                    keys=[self._names, self._cids], args=[low, PAGE, self._entry_prefix, *_FIELDS]
                )
            last, count, rows = msgpack.unpackb(blob, raw=True)
            for name, cid, values in rows:
                # Lua turns a missing field into false; a missing hash was deleted behind
                # the index's back and is skipped
                entry = self._entry(cid, [v if v is not False else None for v in values], name)
                if entry is not None:
                    yield entry
            if count < PAGE:
                return
            low = b"(" + last

    # ---------------------------------------------------------------- schemas

    def put_schema(self, name: str, version: str, record: dict[str, Any]) -> dict[str, Any] | None:
        key = f"{self._schema_prefix}{name}@{version}"
        with self._errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.set(key, json.dumps(record), nx=True)
            pipe.zadd(self._schema_refs, {f"{name}@{version}": 0})
            stored, _ = pipe.execute()
        return None if stored else self.get_schema(name, version)

    def get_schema(self, name: str, version: str) -> dict[str, Any]:
        with self._errors():
            text = self.client.get(f"{self._schema_prefix}{name}@{version}")
        if text is None:
            raise KeyError(f"no schema {name}@{version} in {self.location}")
        return parse_schema_json(
            text, f"{self.location}, key {self._schema_prefix}{name}@{version}"
        )

    def iter_schemas(self) -> Iterator[dict[str, Any]]:
        with self._errors():
            refs = self.client.zrange(self._schema_refs, 0, -1)
            texts = (
                self.client.mget([self._schema_prefix.encode() + r for r in refs]) if refs else []
            )
        for ref, text in zip(refs, texts):
            if text is not None:
                yield parse_schema_json(
                    text, f"{self.location}, key {self._schema_prefix}{ref.decode()}"
                )

    def schema_versions(self, name: str) -> list[str]:
        prefix = name.encode() + b"@"
        with self._errors():
            refs = self.client.zrangebylex(
                self._schema_refs, b"[" + prefix, b"(" + name.encode() + b"A"
            )
        return [r[len(prefix) :].decode() for r in refs]

    # ---------------------------------------------------------------- maintenance

    def reindex(self, *, entries_only: bool = False) -> int:
        """Index entries and schemas written without the secondary keys (the seed-era library).

        Scans the namespace's keys once; returns how many keys were newly indexed.
        An entry whose name is indexed to a live entry keeps that CID; a name
        indexed to a vanished entry is pointed at the entry that now holds it.
        Runs when the provider is made and when a name is not found, so data the
        seed-era library writes is seen without calling this.
        """
        count = 0
        with self._errors():
            for key in self.client.scan_iter(match=f"{self._entry_prefix}*", count=1000):
                name = self.client.hget(key, "name")
                if name is None:
                    continue
                cid = key[len(self._entry_prefix) :]
                count += self._fix_name(self.client, name, cid)
            if entries_only:
                return count
            for key in self.client.scan_iter(match=f"{self._schema_prefix}*", count=1000):
                count += self.client.zadd(self._schema_refs, {key[len(self._schema_prefix) :]: 0})
        return count

    def _fix_name(self, client: Any, name: bytes, cid: bytes) -> int:
        """Index ``name`` → ``cid`` unless the name is indexed to a live entry of that name."""
        held = client.hget(self._cids, name)
        if held == cid:
            return 0
        if held is not None and client.hget(self._entry_prefix.encode() + held, "name") == name:
            return 0
        client.hset(self._cids, name, cid)
        client.zadd(self._names, {name: 0})
        return 1

    def close(self) -> None:
        self.client.close()
