"""Alembic environment: runs on the connection the server hands over."""

from __future__ import annotations

from alembic import context

from certsmith.server.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("certsmith runs its migrations itself; use `certsmith serve`")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
