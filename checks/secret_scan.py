"""A secret scan over the repository's tracked text files, the template, events and samconfig.

It looks for credentials that must only ever live in SSM or Secrets Manager: AWS access keys, private keys,
BLS-API-key-shaped and token-shaped values assigned to secret-sounding names, webhook URLs with tokens, and
template parameters or function environment variables whose values look like secrets.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

PATTERNS: dict[str, re.Pattern[str]] = {
    "aws-access-key-id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private-key": re.compile(r"-----BEGIN (RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "slack-webhook": re.compile(r"https://hooks\.slack\.com/services/T[0-9A-Za-z]+/B[0-9A-Za-z]+/[0-9A-Za-z]+"),
    "secret-assignment": re.compile(
        r"""(?ix)
        (registration_?key|api_?key|app_?token|x-app-token|secret_?access_?key|password|webhook_?url|auth_?token)
        ["']?\s*[:=]\s*["']?
        (?P<value>[A-Za-z0-9+/_\-]{20,})
        """
    ),
}
# Values that are obviously placeholders, test conventions or references, not secrets.
ALLOWED_VALUES = re.compile(r"(?i)^(testing|example|placeholder|redacted|x{6,}|\*{3,}|changeme|dummy|fake|none)")
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".toml", ".json", ".md", ".txt", ".cfg", ".ini", ".sh", ".ipynb", ""}
MAX_BYTES = 2_000_000


@dataclass(frozen=True)
class SecretFinding:
    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: possible {self.kind}"


def tracked_files(root: Path) -> list[Path]:
    """Files git tracks (or would: untracked but not ignored), so local venvs and lakes are skipped."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [root / line for line in out.splitlines() if line]


def scan_text(text: str, path: str) -> list[SecretFinding]:
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        if "secret-scan: allow" in line:
            continue
        for kind, pattern in PATTERNS.items():
            for match in pattern.finditer(line):
                value = match.groupdict().get("value")
                if value and (ALLOWED_VALUES.match(value) or value.startswith(("/", "arn:", "${", "{{"))):
                    continue
                findings.append(SecretFinding(path, number, kind))
    return findings


def scan_repository(root: Path) -> list[SecretFinding]:
    findings: list[SecretFinding] = []
    for path in tracked_files(root):
        if not path.is_file() or path.suffix not in TEXT_SUFFIXES or path.stat().st_size > MAX_BYTES:
            continue
        rel = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        findings.extend(scan_text(text, rel))
    return findings
