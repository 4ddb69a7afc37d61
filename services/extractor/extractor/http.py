"""HTTP for the source connectors: one ``requests.Session`` per cold start, urllib3 retries, a time budget.

- Retries are urllib3's ``Retry``, mounted on the session's adapters: 429 and 5xx answers, connection errors and
  read timeouts, with exponential backoff and jitter, and ``Retry-After`` honoured. There is no retry loop here.
- The time budget comes from the Lambda context. A retry wait (backoff or Retry-After) that would overrun it
  raises ``TimeBudgetExceeded`` instead of sleeping, and a body that drips in too slowly is abandoned, so the
  function answers before Lambda kills it and the record returns to the queue.
- Bodies are streamed into a spooled temporary file (memory up to 8 MB, then /tmp) while their SHA-256 is
  computed, so large files never sit whole in memory.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from extractor.budget import current_budget
from extractor.errors import PayloadTooLarge, SourceUnavailable, TimeBudgetExceeded

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
SPOOL_IN_MEMORY = 8 * 1024 * 1024
CHUNK = 64 * 1024
RETRY_STATUSES = (429, 500, 502, 503, 504)
# Waits between attempts: 0, then 1, 2, 4 ... seconds (factor * 2^(n-1)), plus up to JITTER seconds, capped.
BACKOFF_FACTOR = 0.5
BACKOFF_JITTER = 0.5
BACKOFF_MAX = 30.0


class BudgetedRetry(Retry):
    """urllib3's Retry, refusing to sleep past the invocation's time budget."""

    def sleep(self, response: Any = None) -> None:
        wait = None
        if self.respect_retry_after_header and response is not None:
            wait = self.get_retry_after(response)
        if not wait:
            wait = self.get_backoff_time()
        budget = current_budget()
        if budget is not None and wait >= budget.remaining():
            raise TimeBudgetExceeded(
                f"the next retry would wait {wait:.1f}s, past the time budget ({budget.remaining():.1f}s left)"
            )
        super().sleep(response)


def retry_policy(backoff_factor: float | None = None, backoff_jitter: float | None = None) -> BudgetedRetry:
    """The production policy; tests pass shorter waits (the same retries, Retry-After still honoured). The module's
    timings are read at each call: the local runtime's fault plans shorten them for a run."""
    return BudgetedRetry(
        total=6,
        connect=3,
        read=3,
        status=4,
        other=1,
        allowed_methods=None,  # the BLS query is a POST, and safe to repeat
        status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF_FACTOR if backoff_factor is None else backoff_factor,
        backoff_jitter=BACKOFF_JITTER if backoff_jitter is None else backoff_jitter,
        backoff_max=BACKOFF_MAX,
        respect_retry_after_header=True,
        raise_on_status=False,  # the final answer comes back; the connector decides what it means
        raise_on_redirect=False,
    )


def new_session(user_agent: str, retry: Retry | None = None) -> requests.Session:
    """A session with the retry policy mounted on http and https, and the User-Agent every source sees."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry or retry_policy(), pool_connections=4, pool_maxsize=8)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def user_agent(contact_email: str) -> str:
    """BLS refuses requests whose User-Agent does not name a contact."""
    return f"open-data-pipeline/0.1 (+{contact_email})"


def redacted_url(url: str) -> str:
    """The URL without its query: what is safe to log and to put in metadata."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# ---------------------------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Download:
    """A response body, spooled, with its hash, size and newline count."""

    url: str
    status: int
    headers: dict[str, str]
    file: IO[bytes]
    sha256: str
    size: int
    newlines: int
    retries: int = 0
    _closed: bool = field(default=False, repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def rewind(self) -> IO[bytes]:
        self.file.seek(0)
        return self.file

    def first_line(self, limit: int = 1 << 16) -> bytes:
        """The body's first line (at most ``limit`` bytes), without reading the rest."""
        self.file.seek(0)
        return self.file.read(limit).split(b"\n", 1)[0]

    def tail(self, size: int = 1 << 16) -> bytes:
        """The body's last ``size`` bytes."""
        self.file.seek(max(0, self.size - size))
        return self.file.read(size)

    def close(self) -> None:
        if not self._closed:
            self.file.close()
            self._closed = True


class HttpClient:
    """Requests with connect/read timeouts bounded by the budget, bodies streamed into a spool."""

    def __init__(
        self,
        session: requests.Session,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self.session = session
        self.connect_timeout = connect_timeout or CONNECT_TIMEOUT
        self.read_timeout = read_timeout or READ_TIMEOUT
        self.max_bytes = max_bytes

    def _timeouts(self) -> tuple[float, float]:
        budget = current_budget()
        if budget is None:
            return self.connect_timeout, self.read_timeout
        remaining = budget.remaining()
        if remaining <= 0:
            raise TimeBudgetExceeded("time budget exhausted before the request")
        return min(self.connect_timeout, remaining), min(self.read_timeout, remaining)

    def fetch(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Download:
        """Send one request (urllib3 retries included) and spool its body.

        Raises
        ------
        SourceUnavailable
            When the connection fails, times out or the body breaks off, after the retries.
        TimeBudgetExceeded
            When the budget runs out (before a retry wait, or while the body trickles in).
        PayloadTooLarge
            When the body exceeds ``max_bytes``.
        """
        where = f"{method} {redacted_url(url)}"
        budget = current_budget()
        try:
            response = self.session.request(
                method, url, params=params, json=json_body, headers=headers, timeout=self._timeouts(), stream=True
            )
        except requests.RequestException as exc:
            raise SourceUnavailable(f"{where} failed: {type(exc).__name__}: {_short(exc)}") from exc
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - owned by the Download
        digest, size, newlines = hashlib.sha256(), 0, 0
        try:
            with response:
                for chunk in response.iter_content(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    newlines += chunk.count(b"\n")
                    if size > self.max_bytes:
                        raise PayloadTooLarge(f"{where} is larger than {self.max_bytes} bytes")
                    spool.write(chunk)
                    if budget is not None:
                        budget.check(f"reading {where}")
        except requests.RequestException as exc:
            spool.close()
            raise SourceUnavailable(f"{where} broke off after {size} bytes: {type(exc).__name__}") from exc
        except BaseException:
            spool.close()
            raise
        retries = getattr(response.raw, "retries", None)
        return Download(
            url=url,
            status=response.status_code,
            headers=dict(response.headers),
            file=spool,
            sha256=digest.hexdigest(),
            size=size,
            newlines=newlines,
            retries=len(retries.history) if retries is not None else 0,
        )


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
