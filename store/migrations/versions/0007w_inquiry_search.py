"""Full-text search over inquiries: subject, body (every message) and contact.

SQLite: an FTS5 table ``inquiry_fts`` (rowid = inquiry id) with the trigram
tokenizer, so substrings match in any script (Chinese has no spaces to split on,
e-mail addresses are matched by parts). PostgreSQL: a table ``inquiry_search``
with the same document and a ``tsvector`` (``simple`` configuration, no
stemming: customers write in many languages) behind a GIN index.

The index is kept in sync by triggers on ``inquiry``, ``message`` and
``contact``, so every writer (intake, replies, erasure, another process) keeps
it current without remembering to. Caution for later migrations: on SQLite,
``batch_alter_table`` on one of those tables recreates it and drops its
triggers; re-create them with ``sqlite_triggers()`` below, except ``inquiry_fts_ai``,
which 0008 dropped (tests/test_web_channel.py checks that search still follows inserts
at head).

Revision ID: 0007w
Revises: 0006b
Create Date: 2026-11-29
"""

from alembic import op

revision = "0007w"
down_revision = "0006b"
branch_labels = None
depends_on = None

# the document of inquiry ``{target}`` (an SQL expression giving its id) on SQLite
_SQLITE_ROW = """
INSERT INTO inquiry_fts(rowid, subject, body, contact)
SELECT i.id,
       i.subject,
       coalesce((SELECT group_concat(m.subject || ' ' || m.text, ' ')
                 FROM message m WHERE m.inquiry_id = i.id), '') || ' ' || i.snippet,
       i.contact_email || ' '
       || coalesce((SELECT c.name || ' ' || c.company FROM contact c WHERE c.id = i.contact_id), '')
       || ' ' || coalesce((SELECT group_concat(m.from_name || ' ' || m.from_address, ' ')
                            FROM message m WHERE m.inquiry_id = i.id AND m.direction = 'in'), '')
FROM inquiry i WHERE {where};
"""


def _refresh(where: str, ids: str) -> str:
    return f"DELETE FROM inquiry_fts WHERE rowid IN ({ids});" + _SQLITE_ROW.format(where=where)


def sqlite_triggers() -> list[str]:
    """The CREATE TRIGGER statements that keep ``inquiry_fts`` in sync on SQLite."""
    one_new = _refresh("i.id = NEW.id", "NEW.id")
    msg_new = _refresh("i.id = NEW.inquiry_id", "NEW.inquiry_id")
    msg_old = _refresh("i.id = OLD.inquiry_id", "OLD.inquiry_id")
    contact = _refresh("i.contact_id = NEW.id", "SELECT id FROM inquiry WHERE contact_id = NEW.id")
    return [
        f"CREATE TRIGGER inquiry_fts_ai AFTER INSERT ON inquiry BEGIN {one_new} END",
        "CREATE TRIGGER inquiry_fts_au AFTER UPDATE OF subject, snippet, contact_email, contact_id"
        f" ON inquiry BEGIN {one_new} END",
        "CREATE TRIGGER inquiry_fts_ad AFTER DELETE ON inquiry BEGIN"
        " DELETE FROM inquiry_fts WHERE rowid = OLD.id; END",
        f"CREATE TRIGGER message_fts_ai AFTER INSERT ON message BEGIN {msg_new} END",
        "CREATE TRIGGER message_fts_au AFTER UPDATE OF subject, text, from_name, from_address,"
        f" inquiry_id ON message BEGIN {msg_old} {msg_new} END",
        f"CREATE TRIGGER message_fts_ad AFTER DELETE ON message BEGIN {msg_old} END",
        f"CREATE TRIGGER contact_fts_au AFTER UPDATE OF name, company ON contact BEGIN {contact} END",
    ]


_SQLITE_TRIGGER_NAMES = (
    "inquiry_fts_ai",
    "inquiry_fts_au",
    "inquiry_fts_ad",
    "message_fts_ai",
    "message_fts_au",
    "message_fts_ad",
    "contact_fts_au",
)

_PG_UP = [
    """
    CREATE TABLE inquiry_search (
        inquiry_id integer PRIMARY KEY REFERENCES inquiry(id) ON DELETE CASCADE,
        document text NOT NULL,
        tsv tsvector NOT NULL
    )
    """,
    "CREATE INDEX ix_inquiry_search_tsv ON inquiry_search USING gin (tsv)",
    """
    CREATE FUNCTION claimdesk_inquiry_search_refresh(target integer) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO inquiry_search (inquiry_id, document, tsv)
        SELECT d.id, d.doc, to_tsvector('simple', d.doc)
        FROM (
            SELECT i.id, concat_ws(' ',
                i.subject, i.snippet, i.contact_email,
                (SELECT c.name || ' ' || c.company FROM contact c WHERE c.id = i.contact_id),
                (SELECT string_agg(concat_ws(' ', m.subject, m.text), ' ')
                   FROM message m WHERE m.inquiry_id = i.id),
                (SELECT string_agg(concat_ws(' ', m.from_name, m.from_address), ' ')
                   FROM message m WHERE m.inquiry_id = i.id AND m.direction = 'in')
            ) AS doc
            FROM inquiry i WHERE i.id = target
        ) d
        ON CONFLICT (inquiry_id) DO UPDATE
            SET document = EXCLUDED.document, tsv = EXCLUDED.tsv;
    END $$
    """,
    """
    CREATE FUNCTION claimdesk_inquiry_search_trigger() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_TABLE_NAME = 'inquiry' THEN
            PERFORM claimdesk_inquiry_search_refresh(NEW.id);
        ELSIF TG_TABLE_NAME = 'message' THEN
            IF TG_OP <> 'INSERT' THEN
                PERFORM claimdesk_inquiry_search_refresh(OLD.inquiry_id);
            END IF;
            IF TG_OP <> 'DELETE' THEN
                PERFORM claimdesk_inquiry_search_refresh(NEW.inquiry_id);
            END IF;
        ELSIF TG_TABLE_NAME = 'contact' THEN
            PERFORM claimdesk_inquiry_search_refresh(i.id) FROM inquiry i WHERE i.contact_id = NEW.id;
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER inquiry_search_ai AFTER INSERT OR UPDATE OF subject, snippet, contact_email,"
    " contact_id ON inquiry FOR EACH ROW EXECUTE FUNCTION claimdesk_inquiry_search_trigger()",
    "CREATE TRIGGER message_search_aiud AFTER INSERT OR DELETE OR UPDATE OF subject, text,"
    " from_name, from_address, inquiry_id ON message"
    " FOR EACH ROW EXECUTE FUNCTION claimdesk_inquiry_search_trigger()",
    "CREATE TRIGGER contact_search_au AFTER UPDATE OF name, company ON contact"
    " FOR EACH ROW EXECUTE FUNCTION claimdesk_inquiry_search_trigger()",
    "SELECT claimdesk_inquiry_search_refresh(id) FROM inquiry",
]

_PG_DOWN = [
    "DROP TRIGGER IF EXISTS contact_search_au ON contact",
    "DROP TRIGGER IF EXISTS message_search_aiud ON message",
    "DROP TRIGGER IF EXISTS inquiry_search_ai ON inquiry",
    "DROP FUNCTION IF EXISTS claimdesk_inquiry_search_trigger()",
    "DROP FUNCTION IF EXISTS claimdesk_inquiry_search_refresh(integer)",
    "DROP TABLE IF EXISTS inquiry_search",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _PG_UP:
            op.execute(statement)
        return
    op.execute(
        "CREATE VIRTUAL TABLE inquiry_fts USING fts5(subject, body, contact, tokenize='trigram')"
    )
    for statement in sqlite_triggers():
        op.execute(statement)
    op.execute(_SQLITE_ROW.format(where="1 = 1"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _PG_DOWN:
            op.execute(statement)
        return
    for name in _SQLITE_TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS inquiry_fts")
