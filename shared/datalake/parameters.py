"""Secret parameters (SSM SecureString) through Powertools' Parameters utility.

Each value is read once per ``max_age`` (Powertools' cache: a rotated secret is picked up), decrypted, and
registered with the log redactor the moment it is read. A parameter that does not exist means "run without" (no
key, no webhook): it reads as None, and is cached like a value. The utility loads on the first read, not at cold
start.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from datalake.aws import client
from datalake.observability import register_secret

_MISSING = ""  # what the provider caches for a parameter that does not exist (Powertools does not cache None)


class ParameterError(RuntimeError):
    """SSM could not be read (throttling, an outage, a missing permission); the value is unknown, not absent."""


def _provider(ssm: Any) -> Any:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    class _AbsentIsEmpty(SSMProvider):
        def _get(self, name: str, decrypt: bool = False, **sdk_options: Any) -> str:
            try:
                return super()._get(name, decrypt=decrypt, **sdk_options)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
                    return _MISSING
                raise

    return _AbsentIsEmpty(boto3_client=ssm)


class SecureParameters:
    """Decrypted SecureString parameters, cached for ``max_age`` seconds.

    Parameters
    ----------
    ssm: an SSM client (tests pass moto's); the shared cached one otherwise, looked up on every read so that a
        client made for another endpoint (the local runtime, tests) is followed.
    max_age: seconds a value (or its absence) is kept.
    """

    def __init__(self, ssm: Any | None = None, max_age: float = 300) -> None:
        self._ssm = ssm
        self.max_age = max_age
        self._client: Any = None
        self._provider: Any = None

    @property
    def provider(self) -> Any:
        ssm = self._ssm if self._ssm is not None else client("ssm")
        if self._provider is None or ssm is not self._client:
            self._client, self._provider = ssm, _provider(ssm)
        return self._provider

    def get(self, name: str) -> str | None:
        """The decrypted value, or None when the parameter does not exist.

        Raises
        ------
        ParameterError
            When SSM cannot be read; the message names the parameter and the cause, never a value.
        """
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            value = self.provider.get(name, max_age=int(self.max_age), decrypt=True)
        except GetParameterError as exc:
            raise ParameterError(f"cannot read SSM parameter {name}: {exc}") from exc
        if value == _MISSING:
            return None
        register_secret(value)
        return value

    def clear(self) -> None:
        """Forget every cached value: the next read asks SSM."""
        if self._provider is not None:
            self._provider.clear_cache()
