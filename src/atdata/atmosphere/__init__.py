"""Federation layer: publish and read datasets on the AT Protocol network.

Records (schemas, datasets, lenses) live in the publisher's repository on their
Personal Data Server, under the ``ac.foundation.dataset.*`` lexicons shipped with
this package; shards can be stored there too, as blobs.

- :class:`AtmosphereIndex` (with :class:`PDSBlobStore`): the federated
  :class:`~atdata.AbstractIndex`;
- :class:`SchemaPublisher` / :class:`SchemaLoader`, :class:`DatasetPublisher` /
  :class:`DatasetLoader`, :class:`LensPublisher` / :class:`LensLoader`: one
  record collection each;
- :class:`AtmosphereClient`: sessions, records, blobs and identity resolution;
- :class:`AppViewClient`: search every publisher's datasets through an AppView;
- :func:`mirror_dataset` / :func:`open_mirrored`: verified copies readers fall back to.

    >>> from atdata.atmosphere import AtmosphereClient, AtUri
    >>> AtUri.parse("at://did:plc:abc123/ac.foundation.dataset.sampleSchema/xyz789").rkey
    'xyz789'

The client needs the ``atproto`` SDK: ``pip install 'atdata[atmosphere]'``.
"""

from atdata.atmosphere._identity import IdentityError, IdentityResolver
from atdata.atmosphere._lexicon import (
    LexiconValidationError,
    get_lexicon,
    lexicon_ids,
    to_record_json,
    validate_record,
)
from atdata.atmosphere.appview import AppViewClient, AppViewEntry, AppViewError
from atdata.atmosphere.blob_store import PDSBlobStore, StoredBlob
from atdata.atmosphere.blobs import (
    BlobIntegrityError,
    BlobNotFoundError,
    BlobSource,
)
from atdata.atmosphere.client import (
    AtmosphereClient,
    AtmosphereError,
    AuthenticationError,
    BatchWriteError,
    BlobTooLargeError,
    NotAuthenticatedError,
    RateLimitedError,
    RecordNotFoundError,
)
from atdata.atmosphere.datasets import DatasetLoader, DatasetPublisher
from atdata.atmosphere.index import AtmosphereIndex, AtmosphereIndexEntry
from atdata.atmosphere.lens import CodeReference, LensLoader, LensPublisher
from atdata.atmosphere.mirrors import MirrorError, mirror_dataset, open_mirrored
from atdata.atmosphere.records import InvalidRecordError, Record
from atdata.atmosphere.schema import SchemaLoader, SchemaPublisher
from atdata.atmosphere.uri import AtUri, BlobUrl, is_blob_url, make_tid
from atdata.errors import CredentialURLError, PrivateURLError, PrivateURLWarning

__all__ = [
    "AppViewClient",
    "AppViewEntry",
    "AppViewError",
    "AtUri",
    "AtmosphereClient",
    "AtmosphereError",
    "AtmosphereIndex",
    "AtmosphereIndexEntry",
    "AuthenticationError",
    "BatchWriteError",
    "BlobIntegrityError",
    "BlobNotFoundError",
    "BlobSource",
    "BlobTooLargeError",
    "BlobUrl",
    "CodeReference",
    "CredentialURLError",
    "DatasetLoader",
    "DatasetPublisher",
    "IdentityError",
    "IdentityResolver",
    "InvalidRecordError",
    "LensLoader",
    "LensPublisher",
    "LexiconValidationError",
    "MirrorError",
    "NotAuthenticatedError",
    "PDSBlobStore",
    "PrivateURLError",
    "PrivateURLWarning",
    "RateLimitedError",
    "Record",
    "RecordNotFoundError",
    "SchemaLoader",
    "SchemaPublisher",
    "StoredBlob",
    "get_lexicon",
    "is_blob_url",
    "lexicon_ids",
    "make_tid",
    "mirror_dataset",
    "open_mirrored",
    "to_record_json",
    "validate_record",
]
