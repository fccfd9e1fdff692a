"""Fixtures that start the ATProto PDS (filled in by the atmosphere work)."""
