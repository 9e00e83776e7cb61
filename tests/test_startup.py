"""Start-up configuration: missing or weak secrets stop ``manage.py`` with one line and exit status 2.

Each case runs ``manage.py`` in a fresh interpreter with the production settings module, so the
real settings import path (``portal.secrets.read_secret``) is what is exercised.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECRETS = ["SECRET_KEY", "CRYPTOGRAPHY_KEY", "BLIND_INDEX_KEY"]
GOOD_SECRET = "k" * 20 + "0123456789abcdefghijKLMNOP"  # 46 characters


def base_env(**overrides) -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    env.pop("DJANGO_DEBUG", None)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, name: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_the_environment_itself_passes_check():
    # The baseline for every refusal below: with all three secrets present, check succeeds.
    result = manage("check", env=base_env())
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", SECRETS)
def test_missing_secret_is_one_line_and_exit_2(name):
    result = manage("check", env=base_env(**{name: None, f"{name}_FILE": None}))
    assert_one_line_error(result, name)
    # The line names the missing secret, not some other one.
    for other in set(SECRETS) - {name}:
        assert other not in result.stderr.replace(f"{name}_FILE", "")


@pytest.mark.parametrize("name", SECRETS)
def test_empty_secret_counts_as_missing(name):
    result = manage("check", env=base_env(**{name: "", f"{name}_FILE": None}))
    assert_one_line_error(result, name)


def test_secret_key_file_is_read_when_secret_key_unset(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text(GOOD_SECRET + "\n")
    result = manage("check", env=base_env(SECRET_KEY=None, SECRET_KEY_FILE=str(key_file)))
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_secret_key_file_that_cannot_be_read_is_one_line_and_exit_2(tmp_path):
    missing = tmp_path / "does-not-exist"
    result = manage("check", env=base_env(SECRET_KEY=None, SECRET_KEY_FILE=str(missing)))
    assert_one_line_error(result, "SECRET_KEY_FILE")


def test_short_secret_in_file_is_refused(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text("short-key\n")
    result = manage("check", env=base_env(SECRET_KEY=None, SECRET_KEY_FILE=str(key_file)))
    assert_one_line_error(result, "SECRET_KEY")


@pytest.mark.parametrize("name", SECRETS)
@pytest.mark.parametrize("value", ["x", "a-31-character-secret-is-short!"])
def test_too_short_secret_is_refused(name, value):
    assert len(value) < 32
    result = manage("check", env=base_env(**{name: value, f"{name}_FILE": None}))
    assert_one_line_error(result, name)
    assert value not in result.stderr  # the refusal never echoes the secret


def test_debug_is_off_by_default():
    result = manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)", env=base_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_debug_can_be_turned_on_explicitly():
    # Proves the default test above reads the setting rather than a constant.
    result = manage(
        "shell", "-c", "from django.conf import settings; print(settings.DEBUG)", env=base_env(DJANGO_DEBUG="true")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True"
