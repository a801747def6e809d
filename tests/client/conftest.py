"""Fixtures for the client tests."""

from tests.client.bind9 import bind9
from tests.client.pebble import pebble, pebble_bind9, pebble_nonce_reject

__all__ = ["bind9", "pebble", "pebble_bind9", "pebble_nonce_reject"]
