"""Shared pytest configuration: the real servers are started by the fixture plugins below."""

pytest_plugins = ["fixtures_servers", "fixtures_pds"]
