"""``PDSBlobStore``: dataset shards stored as blobs in the publisher's own PDS.

Shards are copied byte for byte (sample keys kept), streamed from disk; every
shard is checked first (a whole tar whose every member is a sample of the
dataset's type: nothing is uploaded otherwise), and each upload is checked: the CID the PDS returns must be the
SHA-256 of the bytes that were read. A shard larger than the server's blob limit
(``describeServer.blobUploadLimit``) is split into several tar shards by copying
its raw members; a single member too large for any blob is refused before
anything is sent.

A PDS keeps a blob only while a record references it, so uploading is half of a
publish: :meth:`AtmosphereIndex.insert_dataset` uploads every blob first, then
writes one dataset record whose ``storageBlobs`` references them all. If an
upload fails, no record is written and the orphaned blobs are garbage-collected
by the PDS.

Example (needs an account on a PDS)::

    store = PDSBlobStore(client)
    index = AtmosphereIndex(client, data_store=store)
    entry = index.insert_dataset(dataset, name="features", schema_ref=schema_uri)
    ds = atdata.Dataset[FeatureSample](store.create_source(entry.data_urls))
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from atdata._shard_check import MemberCheck, member_checker, stored_type
from atdata._storage import AbstractDataStore, HashingReader, ShardInfo
from atdata._tar import RECORD, TarWriter, iter_members, tar_size
from atdata.atmosphere.blobs import BlobIntegrityError, BlobSource, blob_digest
from atdata.atmosphere.client import BlobTooLargeError
from atdata.atmosphere.uri import BlobUrl
from atdata.dataset import Dataset, SourceLike, make_source
from atdata.dict_sample import DictSample
from atdata.errors import ShardError
from atdata.protocols import DataSource
from atdata.sources import local_path, redact_url

if TYPE_CHECKING:
    from atdata.atmosphere.client import AtmosphereClient

__all__ = ["PDSBlobStore", "StoredBlob"]

TAR_MIME_TYPE = "application/x-tar"
_SUFFIX = ".msgpack"


@dataclass(frozen=True)
class StoredBlob:
    """One shard uploaded as a blob.

    ``url`` is the shard id ``at://{did}/blob/{cid}``, ``ref`` the blob reference a
    record must hold to keep the blob, ``sha256`` the hex digest of its bytes and
    ``samples`` the number of samples in it.
    """

    url: str
    ref: dict[str, Any]
    sha256: str
    samples: int

    @property
    def size(self) -> int:
        """Size in bytes."""
        return int(self.ref["size"])


@dataclass(frozen=True)
class _Part:
    path: Path
    shard_id: str
    samples: int


def _map(path: Path, shard_id: str) -> mmap.mmap:
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise ShardError(shard_id, "empty file: not a tar archive", offset=0)
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def _count_samples(path: Path, shard_id: str, check: MemberCheck) -> int:
    """Samples in a tar shard, each checked: a file that is not a whole tar of them raises."""
    mm = _map(path, shard_id)
    view = memoryview(mm)
    try:
        count = 0
        for name, off, size in iter_members(mm, shard_id):
            member = view[off : off + size]
            try:
                check(shard_id, name, off, member)
            finally:
                member.release()
            count += 1
        return count
    finally:
        view.release()
        with contextlib.suppress(BufferError):  # a traceback may still hold a view: GC closes it
            mm.close()


class PDSBlobStore(AbstractDataStore):
    """An :class:`~atdata.AbstractDataStore` that keeps shards as blobs in ``client``'s PDS.

    Blobs are sized to the server's ``blobUploadLimit`` (or ``max_blob_bytes``
    if smaller); ``workers`` shards upload at the same time. Shards that are
    not local files are first streamed to a temporary directory (``tmp_dir``).

    Example::

        store = PDSBlobStore(client)
        index = AtmosphereIndex(client, data_store=store)
        entry = index.insert_dataset(dataset, name="blob-stored-features", schema_ref=schema_uri)
        ds = atdata.Dataset[FeatureSample](store.create_source(entry.data_urls))
    """

    def __init__(
        self,
        client: AtmosphereClient,
        *,
        max_blob_bytes: int | None = None,
        workers: int = 4,
        mime_type: str = TAR_MIME_TYPE,
        tmp_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if max_blob_bytes is not None and max_blob_bytes < 2 * RECORD:
            raise ValueError(f"max_blob_bytes must be at least {2 * RECORD} (two tar records)")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.client = client
        self.max_blob_bytes = max_blob_bytes
        self.workers = workers
        self.mime_type = mime_type
        self.tmp_dir = tmp_dir

    def __repr__(self) -> str:
        return f"PDSBlobStore({self.client.pds_url!r})"

    @property
    def blob_limit(self) -> int | None:
        """The largest blob this store uploads: the server's limit, or ``max_blob_bytes``."""
        limits = [n for n in (self.client.blob_upload_limit, self.max_blob_bytes) if n]
        return min(limits) if limits else None

    # ------------------------------------------------------------------ writing

    def upload_shards(
        self, dataset: Dataset[Any] | SourceLike, *, sample_type: type | None = None
    ) -> list[StoredBlob]:
        """Upload every shard of ``dataset`` (re-sharded to fit the blob limit); in order.

        Every shard is checked first to hold samples of ``sample_type`` (default:
        the dataset's stored type). Nothing is referenced yet: write a record
        holding the ``ref`` of each result (as :meth:`AtmosphereIndex.insert_dataset`
        does), or the PDS will garbage-collect the blobs.
        """
        source: DataSource = (
            dataset.source if isinstance(dataset, Dataset) else make_source(dataset)
        )
        if sample_type is None:
            sample_type = stored_type(dataset) if isinstance(dataset, Dataset) else DictSample
        check = member_checker(sample_type)
        shard_ids = source.list_shards()
        if not shard_ids:
            raise ValueError("the dataset has no shards to upload")
        self.client.did  # noqa: B018 - NotAuthenticatedError now, before any work
        limit = self.blob_limit
        with tempfile.TemporaryDirectory(prefix="atdata-blobs-", dir=self.tmp_dir) as tmp:
            parts: list[_Part] = []
            for i, shard_id in enumerate(shard_ids):
                parts.extend(self._prepare(source, shard_id, i, limit, Path(tmp), check))
            return self._upload_all(parts)

    def copy_shards(
        self, dataset: Dataset[Any], *, prefix: str = "", sample_type: type | None = None
    ) -> list[ShardInfo]:
        """Upload the shards (see :meth:`upload_shards`); each blob's ``at://{did}/blob/{cid}``
        id, size and SHA-256 (``prefix`` is unused: blobs are named by their content).

        The blobs are not referenced by any record yet: prefer
        :meth:`AtmosphereIndex.insert_dataset`, which keeps them.
        """
        return [
            ShardInfo(blob.url, blob.size, blob.sha256)
            for blob in self.upload_shards(dataset, sample_type=sample_type)
        ]

    def _prepare(
        self,
        source: DataSource,
        shard_id: str,
        i: int,
        limit: int | None,
        tmp: Path,
        check: MemberCheck,
    ) -> list[_Part]:
        """The local file(s) to upload for one shard (checked): itself, a copy, or its splits."""
        path = local_path(shard_id)
        if path is None or not path.is_file():
            path = tmp / f"shard-{i:06d}.tar"
            try:
                stream = source.open_shard(shard_id)
            except (KeyError, OSError) as exc:
                raise ShardError(redact_url(shard_id), f"cannot open ({exc})") from None
            with contextlib.closing(stream), open(path, "wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
        name = redact_url(shard_id)
        samples = _count_samples(path, name, check)
        if limit is None or path.stat().st_size <= limit:
            return [_Part(path, name, samples)]
        return self._split(path, name, limit, tmp / f"split-{i:06d}")

    def _split(self, path: Path, shard_id: str, limit: int, stem: Path) -> list[_Part]:
        """Copy the raw members of a too-large shard into tar files of at most ``limit`` bytes."""
        parts: list[_Part] = []
        writer: TarWriter | None = None
        samples = 0

        def finish() -> None:
            if writer is not None:
                writer.close()
                parts.append(_Part(Path(writer.path), f"{shard_id} (part {len(parts)})", samples))

        mm = _map(path, shard_id)
        try:
            view = memoryview(mm)
            for name, off, size in iter_members(mm, shard_id):
                if tar_size(0, name, size) > limit:
                    raise BlobTooLargeError(
                        f"{shard_id}: member {name!r} ({size:,} bytes) cannot fit in a blob of "
                        f"at most {limit:,} bytes (the PDS limit); nothing was uploaded",
                        target=shard_id,
                    )
                if writer is None or tar_size(writer.offset, name, size) > limit:
                    finish()
                    writer, samples = TarWriter(f"{stem}-{len(parts):04d}.tar"), 0
                writer.write(name, [view[off : off + size]])
                samples += name.endswith(_SUFFIX)
            finish()
            view.release()
        except BaseException:
            if writer is not None:
                writer.close()
            raise
        finally:
            with contextlib.suppress(BufferError):
                mm.close()
        return parts

    def _upload_all(self, parts: list[_Part]) -> list[StoredBlob]:
        if self.workers == 1 or len(parts) == 1:
            return [self._upload(p) for p in parts]
        with ThreadPoolExecutor(min(self.workers, len(parts))) as pool:
            futures = [pool.submit(self._upload, p) for p in parts]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def _upload(self, part: _Part) -> StoredBlob:
        size = part.path.stat().st_size
        with open(part.path, "rb") as fh:
            body = HashingReader(fh, part.shard_id)
            # a RawIOBase reads as a binary file; typeshed's IO[bytes] is not a protocol
            ref = self.client.upload_blob(cast(IO[bytes], body), mime_type=self.mime_type)
            if body.size == size:
                digest = body.digest()
            else:  # the reads skipped around: hash the file again
                fh.seek(0)
                digest = hashlib.file_digest(fh, "sha256").digest()
        cid = ref.get("ref", {}).get("$link") if isinstance(ref.get("ref"), dict) else None
        if not isinstance(cid, str) or ref.get("size") != size:
            raise BlobIntegrityError(
                part.shard_id, f"the PDS answered the upload with an unexpected blob ref {ref!r}"
            )
        if blob_digest(cid) != digest:
            raise BlobIntegrityError(
                part.shard_id,
                f"the PDS stored blob {cid}, which is not the SHA-256 {digest.hex()} of the "
                "bytes sent (corrupted in transit?)",
            )
        return StoredBlob(str(BlobUrl(self.client.did, cid)), dict(ref), digest.hex(), part.samples)

    # ------------------------------------------------------------------ reading

    def create_source(self, urls: Sequence[str]) -> BlobSource:
        """A :class:`~atdata.atmosphere.BlobSource` streaming these ``at://{did}/blob/{cid}`` shards."""
        return self.client.blob_source(list(urls))

    def read_url(self, url: str) -> str:
        """The HTTP ``getBlob`` URL of a blob shard id (readable without credentials)."""
        blob = BlobUrl.parse(url)
        return self.client.get_blob_url(blob.did, blob.cid)

    def owns(self, url: str) -> bool:
        """True for an ``at://{did}/blob/{cid}`` shard id of this client's account."""
        try:
            blob = BlobUrl.parse(url)
        except ValueError:
            return False
        return blob.did == self.client.did

    def delete(self, urls: Sequence[str]) -> None:
        """Nothing to do: the PDS garbage-collects a blob that no record references."""

    def supports_streaming(self) -> bool:
        """True: blobs are streamed (and CID-checked), never downloaded whole first."""
        return True
