"""What several test tiers share: running the local runtime in a subprocess, auditing a run, comparing lakes."""
