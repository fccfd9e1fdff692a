"""Local servers for trying atdata and for its tests: an S3 store, a PDS, an AppView.

Each launcher starts a real server on free loopback ports with a temporary data
directory and returns a :class:`LocalServer` handle; nothing touches a user's
default database, bucket or account.
"""

from atdata.stack._base import LocalServer, free_port, wait_until

__all__ = ["LocalServer", "free_port", "wait_until"]
