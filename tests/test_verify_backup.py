"""verify_backup: a real pg_dump of the test database restored into a scratch database, row
counts compared, a sample of encrypted values decrypted on both sides, the result recorded."""

import json

import pytest
from django.core.management import call_command
from django.db import connections

from compliance import backup_check
from compliance.governance_models import BackupVerification
from tests.conftest import BOTH_DATABASES, Org

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)


def scratch_databases() -> list[str]:
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", ["%\\_restorecheck\\_%"])
        return [row[0] for row in cursor.fetchall()]


def test_tools_match_the_server_version():
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version_num')::int / 10000")
        major = cursor.fetchone()[0]
    directory, tool_major = backup_check.find_tools(major)
    assert tool_major == major and (directory / "pg_restore").is_file()


def test_backup_restores_with_equal_counts_and_decryptable_values(capsys):
    Org(customers_per_team=3)
    before = scratch_databases()
    call_command("verify_backup", "--json", "--sample", "5")
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True, result
    assert result["table_mismatches"] == [] and result["sample_mismatches"] == 0
    assert result["tables"] > 20 and result["rows"] > 12
    assert result["sampled_values"] >= 15  # name, email, phone of 5 customers at least
    assert len(result["dump_sha256"]) == 64 and result["dump_bytes"] > 0
    record = BackupVerification.objects.get(pk=result["verification"])
    assert record.ok and record.finished_at is not None
    # The scratch database is gone again.
    assert scratch_databases() == before
    # Nothing about a person in the record.
    text = json.dumps(result)
    assert "@" not in text


def test_a_value_that_does_not_decrypt_fails_the_comparison():
    from portal.field_crypto import encrypt_value

    columns = [("t", "id", "c", b"t.c")]

    blob = encrypt_value("hello", b"t.c")
    live = {("t", "c"): {1: blob, 2: blob}}
    restored = {("t", "c"): {1: blob, 2: encrypt_value("hello", b"other.column")}}
    assert backup_check._compare_values(columns, live, restored) == (2, 1)
    restored = {("t", "c"): {1: blob}}
    assert backup_check._compare_values(columns, live, restored) == (2, 1)


def test_an_unreachable_database_fails_cleanly_and_is_recorded(settings):
    from django.core.management.base import CommandError

    url = connections["owner"].settings_dict
    settings.BACKUP_DATABASE_URL = (
        f"postgres://{url['USER']}@{url['HOST'] or '127.0.0.1'}:{url['PORT'] or 5432}/no_such_db"
    )
    with pytest.raises(CommandError, match="backup restoration test failed"):
        call_command("verify_backup")
    record = BackupVerification.objects.order_by("-id").first()
    assert not record.ok and record.finished_at is not None and record.detail.startswith("OperationalError")
