"""Search index: a new inquiry is indexed once, when its first message is stored.

0007w indexed a new inquiry twice: its own row (subject, snippet, contact) when it was
inserted, then the whole document again, after deleting the first, when its message
followed a moment later in the same transaction. Every inquiry is created with its
first message (``bot.usecases.ingest``), and the message's trigger builds the whole
document (inquiry, messages, contact), so the inquiry's insert trigger goes; its update
trigger stays. On SQLite that was three trigram tokenizations per new inquiry instead of
one (~12 % of the intake's time in-process, bench/README.md).

Revision ID: 0008
Revises: 0007r
Create Date: 2026-11-29
"""

from alembic import op

revision = "0008"
down_revision = "0007r"
branch_labels = None
depends_on = None

_PG_UPDATE_ONLY = (
    "CREATE TRIGGER inquiry_search_ai AFTER UPDATE OF subject, snippet, contact_email,"
    " contact_id ON inquiry FOR EACH ROW EXECUTE FUNCTION claimdesk_inquiry_search_trigger()"
)
_PG_INSERT_OR_UPDATE = (
    "CREATE TRIGGER inquiry_search_ai AFTER INSERT OR UPDATE OF subject, snippet, contact_email,"
    " contact_id ON inquiry FOR EACH ROW EXECUTE FUNCTION claimdesk_inquiry_search_trigger()"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS inquiry_search_ai ON inquiry")
        op.execute(_PG_UPDATE_ONLY)
        return
    op.execute("DROP TRIGGER IF EXISTS inquiry_fts_ai")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS inquiry_search_ai ON inquiry")
        op.execute(_PG_INSERT_OR_UPDATE)
        return
    import importlib

    search = importlib.import_module("store.migrations.versions.0007w_inquiry_search")
    [statement] = [t for t in search.sqlite_triggers() if "inquiry_fts_ai" in t]
    op.execute(statement)
