"""Throwaway Redis and PostgreSQL servers for the test suite and the benchmarks (not shipped).

``atdata stack up`` starts what a user tries atdata with (S3, a PDS, an AppView);
these two only back the Redis and PostgreSQL index tests, so they live with the tests.
The fixtures import ``servers.redis``; the benchmarks, run from the repository root,
import ``tests.servers.redis``.
"""
