"""Migrations: idempotent, matching the tables, and enforcing the status CHECKs."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, text
from sqlalchemy.exc import IntegrityError

from octopus.core.enums import OnLost, Ownership, RunStatus, TaskStatus, TaskType
from octopus.store import SqlStore, open_store
from octopus.store.sql import alembic_config
from octopus.store.tables import metadata, runs, tasks
from tests.conftest import EPOCH


def test_migrate_twice_is_a_no_op(store: SqlStore) -> None:
    store.migrate()
    store.migrate()
    with store.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        head = ScriptDirectory.from_config(alembic_config(conn)).get_current_head()
    assert version == head


def test_fresh_migration_creates_every_table(database_url: str) -> None:
    fresh = open_store(database_url)
    try:
        fresh.migrate()
        names = set(inspect(fresh.engine).get_table_names())
    finally:
        fresh.close()
    assert {t.name for t in metadata.sorted_tables} <= names


def test_migrated_schema_matches_the_tables(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_open_store_rejects_other_backends() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        open_store("mysql://localhost/octopus")


def _task_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "name": "t",
        "plugin": "demo",
        "action": "echo",
        "args": [],
        "kwargs": {},
        "type": TaskType.ADHOC.value,
        "ownership": Ownership.ANYONE.value,
        "labels": {},
        "max_retries": 0,
        "retry_backoff_seconds": 1.0,
        "on_lost": OnLost.RETRY.value,
        "timezone": "UTC",
        "status": TaskStatus.PENDING.value,
        "created_at": EPOCH,
        "updated_at": EPOCH,
    }
    row.update(overrides)
    return row


@pytest.mark.parametrize("column", ["status", "type", "ownership", "on_lost", "last_run_status"])
def test_check_constraints_refuse_unknown_values(store: SqlStore, column: str) -> None:
    legacy = "Done"  # accepted on input, never stored
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert(tasks).values(**_task_row(**{column: legacy})))


def test_runs_are_unique_per_fire_time(store: SqlStore) -> None:
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        task_id = conn.execute(insert(tasks).values(**_task_row())).inserted_primary_key[0]
        row = {"task_id": task_id, "fire_time": EPOCH, "status": RunStatus.PENDING.value}
        row["created_at"] = EPOCH
        conn.execute(insert(runs).values(**row))
        conn.execute(insert(runs).values(**row))
