"""A lease in the state table: one holder at a time for a named resource, released on exit, expiring on its own.

Used wherever two invocations must not interleave their writes: a staging group merged by the transformer, a bulk
mirror applied by the extractor. The item is ``LOCK#{resource}`` / ``LEASE``; ``expires_at`` is also the table's TTL
attribute, so a holder that dies (a Lambda timeout) blocks the resource for at most ``lease_seconds``.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger

from datalake.state import ConditionFailed, Table, to_item

logger = Logger(child=True)


class LeaseBusy(RuntimeError):
    """Another invocation holds the lease for longer than this one may wait: retry later."""


class Lease(Table):
    """Leases on named resources of one state table.

    Parameters
    ----------
    table_name: the state table.
    dynamodb: a client (tests pass moto's); the shared cached one otherwise.
    lease_seconds: how long a lease lasts if its holder never releases it (longer than the function timeout).
    wait_seconds: how long ``hold`` waits for a busy resource before giving up.
    """

    def __init__(
        self,
        table_name: str,
        dynamodb: Any | None = None,
        lease_seconds: int = 900,
        wait_seconds: float = 60.0,
    ) -> None:
        super().__init__(table_name, dynamodb)
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds

    @contextmanager
    def hold(self, resource: str, lease_seconds: int | None = None) -> Iterator[None]:
        """Hold the lease on ``resource`` for the duration of the block.

        ``lease_seconds``: this holder's lease, when it differs from the table's default (a holder that knows how
        long it can run, e.g. the invocation's remaining time).

        Raises
        ------
        LeaseBusy
            When another holder keeps it longer than ``wait_seconds``.
        StateError
            When the state table cannot be reached.
        """
        key = {"pk": f"LOCK#{resource}", "sk": "LEASE"}
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.05
        lease = self.lease_seconds if lease_seconds is None else lease_seconds
        while not self._acquire(key, token, lease):
            if time.monotonic() >= deadline:
                raise LeaseBusy(f"{resource} is locked by another invocation; retry later")
            time.sleep(delay + random.uniform(0, delay))  # noqa: S311 - jitter, not cryptography
            delay = min(delay * 2, 2.0)
        try:
            yield
        finally:
            self._release(key, token)

    def _acquire(self, key: dict[str, str], token: str, lease_seconds: int) -> bool:
        now = int(time.time())
        try:
            self.call(
                "put_item",
                f"cannot take the lock {key['pk']}",
                Item=to_item({**key, "owner": token, "expires_at": now + lease_seconds}),
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(now)}},
            )
        except ConditionFailed:
            return False
        return True

    def _release(self, key: dict[str, str], token: str) -> None:
        try:
            self.call(
                "delete_item",
                f"cannot release the lock {key['pk']}",
                Key=to_item(key),
                ConditionExpression="#owner = :token",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":token": {"S": token}},
            )
        except ConditionFailed:
            logger.warning("lease expired before release; another holder took it", extra={"lock": key["pk"]})
