"""Source credentials from SSM Parameter Store (SecureString): the BLS API key and the Socrata app token.

Values are read through Powertools' Parameters utility (``datalake.parameters``), cached for the life of a warm
container with a TTL (so a rotated key is picked up), registered with the log redactor the moment they are read,
and never logged. A parameter that does not exist means "run
without": keyless BLS limits, anonymous Socrata paging.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from datalake.parameters import ParameterError, SecureParameters
from extractor.errors import SourceUnavailable

logger = Logger(child=True)

CACHE_SECONDS = 15 * 60


class CredentialStore(SecureParameters):
    def __init__(self, ssm: Any | None = None, ttl_seconds: float = CACHE_SECONDS) -> None:
        super().__init__(ssm, max_age=ttl_seconds)

    def get(self, name: str) -> str | None:
        """The decrypted value of a parameter, or None when it does not exist.

        Raises
        ------
        SourceUnavailable
            When SSM cannot be read (throttling, an outage, a missing permission): the record fails and retries
            rather than silently running with the wrong limits.
        """
        try:
            value = super().get(name)
        except ParameterError as exc:
            raise SourceUnavailable(str(exc)) from exc
        logger.debug("credential read", extra={"parameter": name, "present": value is not None})
        return value
