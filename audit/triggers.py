"""Database triggers that make the audit tables append-only, for PostgreSQL and SQLite.

They stop the application (and anyone using its database role) from rewriting history with
plain SQL. A PostgreSQL superuser can still bypass them (``session_replication_role``); that
is caught by verification against checkpoints kept outside the database (docs/audit.md).

Migrations import the statements from here: existing names must never change meaning. A new
version of a trigger gets a new name and a new migration.
"""

from collections.abc import Iterable

APPEND_ONLY_TABLES = ("audit_auditevent", "audit_auditleaf", "audit_auditnode", "audit_checkpoint")

POSTGRES_FUNCTIONS = [
    """
    CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit table % is append-only: % refused', TG_TABLE_NAME, TG_OP;
    END $$
    """,
    # The writing transaction's id orders sequencing; the database clock stamps the event.
    """
    CREATE OR REPLACE FUNCTION audit_event_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.txid := pg_current_xact_id()::text::bigint;
        NEW.created_at := statement_timestamp();
        RETURN NEW;
    END $$
    """,
]


def postgres_create(tables: Iterable[str] = APPEND_ONLY_TABLES) -> list[str]:
    statements = list(POSTGRES_FUNCTIONS)
    statements.append(
        "CREATE TRIGGER audit_event_stamp BEFORE INSERT ON audit_auditevent "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_stamp()"
    )
    for table in tables:
        statements.append(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )
        statements.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
    return statements


def postgres_drop(tables: Iterable[str] = APPEND_ONLY_TABLES) -> list[str]:
    statements = ["DROP TRIGGER IF EXISTS audit_event_stamp ON audit_auditevent"]
    for table in tables:
        statements.append(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        statements.append(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    statements.append("DROP FUNCTION IF EXISTS audit_event_stamp()")
    statements.append("DROP FUNCTION IF EXISTS audit_refuse_change()")
    return statements


def sqlite_create(tables: Iterable[str] = APPEND_ONLY_TABLES) -> list[str]:
    statements = []
    for table in tables:
        for operation in ("UPDATE", "DELETE"):
            statements.append(
                f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'audit table {table} is append-only: {operation} refused'); END"
            )
    return statements


def sqlite_drop(tables: Iterable[str] = APPEND_ONLY_TABLES) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {table}_no_{operation}" for table in tables for operation in ("update", "delete")]


def create_statements(vendor: str) -> list[str]:
    return {"postgresql": postgres_create, "sqlite": sqlite_create}[vendor]()


def drop_statements(vendor: str) -> list[str]:
    return {"postgresql": postgres_drop, "sqlite": sqlite_drop}[vendor]()
