"""The secret scan: the repository is clean, and planted secrets are found."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from checks.secret_scan import scan_repository, scan_text

ROOT = Path(__file__).resolve().parents[2]
# Planted values are assembled at run time, so this file itself stays clean for the repository scan.
KEY = "0f3c9a7be1d24c55" + "a8e6f0b2d9c4e7a1"
TOKEN = "Zk9sd2Rrc2Fsa2pm" + "ZGxza2pmZGxr"


def test_the_repository_holds_no_secrets():
    findings = scan_repository(ROOT)
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("aws_access_key_id = " + "AKIA" + "IOSFODNN7EXAMPLE", "aws-access-key-id"),
        ('{"registrationkey": "' + KEY + '"}', "secret-assignment"),
        ("SOCRATA_APP_TOKEN=" + TOKEN, "secret-assignment"),
        ("-----BEGIN RSA " + "PRIVATE KEY-----", "private-key"),
        ("url: https://hooks.slack.com/" + "services/T0001/B0002/abcdefghijklmnop", "slack-webhook"),
    ],
)
def test_planted_secrets_are_found(text, kind):
    assert [f.kind for f in scan_text(text, "x")] == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "AWS_SECRET_ACCESS_KEY: testing",
        "BLS_API_KEY_PARAM: !Ref BlsApiKeyParameterName",
        'api_key = "/opendata/bls/api-key"',
        "registrationkey: ***redacted***",
    ],
)
def test_references_and_placeholders_are_not_secrets(text):
    assert scan_text(text, "x") == []


def test_a_secret_planted_in_a_repository_file_is_found(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "samconfig.toml").write_text(f'parameter_overrides = "BlsApiKey={KEY}"\napi_key = "{KEY}"\n')
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "e.json").write_text('{"app_token": "' + TOKEN + '"}')
    findings = scan_repository(tmp_path)
    assert {(f.path, f.line) for f in findings} == {("samconfig.toml", 1), ("samconfig.toml", 2), ("events/e.json", 1)}
