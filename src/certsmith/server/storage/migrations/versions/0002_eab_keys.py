"""eab keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:11:09.332042
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "eab_keys",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("hmac_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("account_id", sa.String(length=32), nullable=True),
        sa.Column("comment", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.PrimaryKeyConstraint("key_id"),
    )


def downgrade() -> None:

    op.drop_table("eab_keys")
