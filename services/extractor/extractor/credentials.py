"""Source credentials from SSM Parameter Store (SecureString): the BLS API key and the Socrata app token.

Values are cached for the life of a warm container (with a TTL, so a rotated key is picked up), registered with
the log redactor the moment they are read, and never logged. A parameter that does not exist means "run
without": keyless BLS limits, anonymous Socrata paging.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from datalake.aws import client
from datalake.observability import register_secret
from extractor.errors import SourceUnavailable

logger = Logger(child=True)

CACHE_SECONDS = 15 * 60


class CredentialStore:
    def __init__(self, ssm: Any | None = None, ttl_seconds: float = CACHE_SECONDS) -> None:
        self._ssm = ssm
        self.ttl_seconds = ttl_seconds
        self._cache: dict[str, tuple[float, str | None]] = {}

    @property
    def ssm(self) -> Any:
        return self._ssm if self._ssm is not None else client("ssm")  # the cached factory's, for its endpoint

    def get(self, name: str) -> str | None:
        """The decrypted value of a parameter, or None when it does not exist.

        Raises
        ------
        SourceUnavailable
            When SSM cannot be read (throttling, an outage, a missing permission): the record fails and retries
            rather than silently running with the wrong limits.
        """
        cached = self._cache.get(name)
        if cached is not None and time.monotonic() - cached[0] < self.ttl_seconds:
            return cached[1]
        try:
            value = self.ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ParameterNotFound":
                raise SourceUnavailable(f"cannot read SSM parameter {name}: {exc}") from exc
            value = None
        except BotoCoreError as exc:
            raise SourceUnavailable(f"cannot read SSM parameter {name}: {exc}") from exc
        register_secret(value)
        self._cache[name] = (time.monotonic(), value)
        logger.debug("credential read", extra={"parameter": name, "present": value is not None})
        return value

    def clear(self) -> None:
        self._cache.clear()
