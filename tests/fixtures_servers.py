"""Fixtures that start Redis, PostgreSQL and the S3 store (filled in by the infra work)."""
