"""Migrations after 0005 only add: an upgrade that drops or renames fails here.

Processes of the previous release keep serving while the database is
migrated (docs/deploy.md, Upgrades), so an `upgrade()` must not take away
what they use. A rename or removal takes two releases; when one is due, add
it to ALLOWED with the reason, so that the exception is reviewed and visible.
`downgrade()` is not checked: it undoes its own upgrade, in development.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from nubes.store.database import MIGRATIONS

# Revisions written before the rule; they may rebuild (SQLite batch mode) freely.
CHECKED_AFTER = "0005"
FORBIDDEN_CALLS = frozenset(
    {
        "drop_column",
        "drop_table",
        "drop_index",
        "drop_constraint",
        "rename_table",
        "drop_table_comment",
        "drop_column_comment",
    }
)
FORBIDDEN_SQL = re.compile(r"\b(DROP|RENAME|TRUNCATE)\b", re.IGNORECASE)
# (revision, what) -> why it is safe; `what` as the violation names it.
ALLOWED: dict[tuple[str, str], str] = {}


def violations(source: str) -> list[str]:
    """What the `upgrade()` of a migration's source takes away, by call or SQL."""
    tree = ast.parse(source)
    found: list[str] = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef) and function.name == "upgrade":
            found.extend(_in_function(function))
    return found


def _in_function(function: ast.FunctionDef) -> list[str]:
    found = []
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name in FORBIDDEN_CALLS:
                found.append(name)
            elif name == "alter_column" and any(
                keyword.arg == "new_column_name" for keyword in node.keywords
            ):
                found.append("alter_column(new_column_name=...)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = FORBIDDEN_SQL.search(node.value)
            if match:
                found.append(f"SQL {match.group(1).upper()}")
    return found


def _revisions() -> list[Path]:
    paths = sorted((MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    return [path for path in paths if path.name[:4] > CHECKED_AFTER]


@pytest.mark.parametrize("path", _revisions(), ids=lambda path: path.name[:4])
def test_upgrades_after_0005_only_add(path: Path) -> None:
    revision = path.name[:4]
    found = violations(path.read_text())
    unreviewed = [what for what in found if (revision, what) not in ALLOWED]
    assert unreviewed == [], f"{path.name}: upgrade() takes away {unreviewed}; see docs/deploy.md"


def test_there_are_revisions_to_check() -> None:
    assert [path.name[:4] for path in _revisions()][:1] == ["0006"]


BAD = """
def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("label")
    op.alter_column("devices", "name", new_column_name="title")
    op.drop_table("groups")
    op.execute("ALTER TABLE messages RENAME TO old_messages")
    op.execute(sa.text("truncate session_log"))


def downgrade() -> None:
    op.drop_table("anything")
"""


def test_the_check_sees_drops_renames_and_raw_sql_in_upgrade_only() -> None:
    assert sorted(violations(BAD)) == [
        "SQL RENAME",
        "SQL TRUNCATE",
        "alter_column(new_column_name=...)",
        "drop_column",
        "drop_table",
    ]


def test_adding_passes() -> None:
    good = (MIGRATIONS / "versions" / "0005_psk_rotation.py").read_text()
    assert violations(good) == []
