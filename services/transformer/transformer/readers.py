"""Bounded readers over a landing object's byte stream.

pyarrow only ever receives complete in-memory pieces (whole lines, whole JSON elements): a Python stream that
fails half-way inside a pyarrow reader aborts the process, and a piece boundary chosen here keeps memory bounded
by the piece size rather than the object size.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from transformer.domain import PayloadRejected

PIECE_BYTES = 4 << 20
T = TypeVar("T")
_HTML_MARKERS = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml")


class ByteStream(Protocol):
    def read(self, size: int = -1) -> bytes: ...


def read_all(stream: ByteStream) -> bytes:
    return stream.read()


def looks_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:64].lower()
    return start.startswith(_HTML_MARKERS) or (start.startswith(b"<") and b">" in start)


def reject_html(head: bytes, name: str, part_key: str) -> None:
    if looks_like_html(head):
        snippet = head.lstrip()[:60].decode("utf-8", "replace")
        raise PayloadRejected(
            f"{name} is an HTML page, not data (starts with {snippet!r})", check="payload.html", part_key=part_key
        )


def iter_line_pieces(stream: ByteStream, piece_bytes: int = PIECE_BYTES) -> Iterator[bytes]:
    """Pieces of roughly ``piece_bytes`` that each end at a line end (the last may not)."""
    carry = b""
    while True:
        chunk = stream.read(piece_bytes)
        if not chunk:
            break
        data = carry + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        carry = data[cut + 1 :]
        yield data[: cut + 1]
    if carry:
        yield carry


def load_json_document(payload: bytes, name: str, part_key: str) -> Any:
    """A whole JSON document (an API response, a metadata file), with wholesale rejection reasons.

    Raises
    ------
    PayloadRejected
        Empty, HTML, or not JSON (a truncated body fails here, with the position json names).
    """
    if not payload.strip():
        raise PayloadRejected(f"{name} is empty", check="payload.empty", part_key=part_key)
    reject_html(payload[:512], name, part_key)
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        truncated = (
            " (the body looks truncated)"
            if isinstance(exc, json.JSONDecodeError) and exc.pos >= len(payload.rstrip()) - 1
            else ""
        )
        raise PayloadRejected(
            f"{name} is not valid JSON{truncated}: {exc}", check="payload.json", part_key=part_key
        ) from exc


class Prefetched(Generic[T]):
    """Runs an iterator on a worker thread, ``depth`` items ahead of its consumer.

    Reading and parsing the next piece (pyarrow's JSON parser releases the GIL) then overlaps with casting and
    writing the current one. Items, and the exception that ended the iterator, reach the consumer in order. Use it
    as a context manager: leaving the block stops the worker and waits for it, so the stream it reads can be
    closed safely afterwards.
    """

    _END = object()

    def __init__(self, iterable: Iterable[T], depth: int = 2) -> None:
        self._source = iterable
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="piece-prefetch", daemon=True)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put((item, None)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put((self._END, exc))
            return
        self._put((self._END, None))

    def __enter__(self) -> Iterator[T]:
        self._thread.start()
        return self._items()

    def _items(self) -> Iterator[T]:
        while True:
            item, error = self._queue.get()
            if error is not None:
                raise error
            if item is self._END:
                return
            yield item

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
