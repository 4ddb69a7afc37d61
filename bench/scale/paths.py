"""Where the scale benchmark finds the real files and keeps what it generates (``.bench-cache/``, git-ignored)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPLAY = ROOT / "data" / "replay"
REAL_PR = REPLAY / "bls_bulk" / "pr"
CACHE = ROOT / ".bench-cache"
