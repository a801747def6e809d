"""Fixtures for the client tests."""

from tests.client.bind9 import bind9

__all__ = ["bind9"]
