"""Read a CA's SQLite database directly, to prove a bad request changed nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# Redeemed nonces and the schema version are not state a bad request could corrupt.
_IGNORED = {"used_nonces", "alembic_version"}


def snapshot(data_dir: Path) -> dict[str, list[tuple[object, ...]]]:
    uri = f"file:{data_dir / 'certsmith.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        tables = [
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if row[0] not in _IGNORED
        ]
        state = {t: sorted(db.execute(f"SELECT * FROM {t}"), key=repr) for t in tables}  # noqa: S608 -- names come from sqlite_master
    db.close()
    return state
