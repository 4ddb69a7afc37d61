"""Landing objects read and hashed at once: a part's sha256 and size are checked against its manifest entry while
the parser reads it, so a part is never read twice (a large one is hashed on a worker thread, overlapping parsing).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from datalake.lake import LakeError
from transformer.domain import PayloadRejected

READ_BYTES = 8 << 20
# Parts at least this large (by their manifest size) are hashed on a worker thread while they are parsed; below
# it, starting and joining the thread costs more than the hashing it would overlap (a 1.6 MB file hashes in ~1 ms).
BACKGROUND_HASH_BYTES = 16 << 20


class _BackgroundHash:
    """sha256 over a sequence of chunks on a worker thread (hashlib releases the GIL on large buffers), so
    verifying a large part overlaps with parsing it instead of adding to it. At most ``depth`` chunks wait."""

    def __init__(self, depth: int = 2) -> None:
        self.digest = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="part-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self.digest.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        self.stop()
        return self.digest.hexdigest()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class VerifiedStream:
    """A landing object's body, hashed while it is read; ``verify`` checks it against its manifest entry.

    Read errors (a reset connection, a short body) become ``LakeError``: they are transient, unlike a payload that
    is itself bad.
    """

    def __init__(self, body: Any, key: str, sha256: str | None = None, size: int | None = None) -> None:
        self._body = body
        self.key = key
        self._expected_sha = sha256
        self._expected_size = size
        self._hash: Any = hashlib.sha256() if sha256 is not None else None
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._body.read() if size is None or size < 0 else self._body.read(size)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise LakeError(f"reading {self.key} failed after {self.bytes_read} bytes: {exc}") from exc
        if self._hash is not None:
            if (
                len(data) >= READ_BYTES // 32
                and (self._expected_size or 0) >= BACKGROUND_HASH_BYTES
                and not isinstance(self._hash, _BackgroundHash)
            ):
                # a large part: hand the hashing to a worker thread (the digest so far is carried over)
                background = _BackgroundHash()
                background.digest = self._hash
                self._hash = background
            self._hash.update(data)
        self.bytes_read += len(data)
        return data

    def verify(self) -> None:
        """Raises PayloadRejected when the object read is not the one the manifest committed."""
        if self._expected_sha is None:
            return
        while self.read(READ_BYTES):  # a parser may stop at the closing bracket: hash the rest too
            pass
        digest = self._hash.hexdigest()
        if digest != self._expected_sha or (self._expected_size is not None and self.bytes_read != self._expected_size):
            raise PayloadRejected(
                f"{self.key} does not match its manifest: sha256 {digest[:12]}.. over {self.bytes_read} bytes, "
                f"manifest says {self._expected_sha[:12]}.. over {self._expected_size} bytes",
                check="part.sha256",
                part_key=self.key,
            )

    def close(self) -> None:
        if isinstance(self._hash, _BackgroundHash):
            self._hash.stop()
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
