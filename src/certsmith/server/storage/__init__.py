"""The storage authority: the only part of certsmith that speaks SQL."""

from certsmith.server.storage.repository import Store, Tx, new_id

__all__ = ["Store", "Tx", "new_id"]
