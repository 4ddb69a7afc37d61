"""The state table: dataset state (last landing hash), bulk-mirror file state, and the run ledger.

One DynamoDB table, keyed ``pk``/``sk``:

  DATASET#{source}#{dataset}   STATE                 last content hash, last manifest, last landed/staged times
  BULKFILE#{survey}            FILE#{name}           mirrored file: upstream Last-Modified, size, sha256, version
  RUN#{run_id}                 SUMMARY / EVENT#...   the run ledger, updated from pipeline events
  SOURCE#{source}              FRESHNESS             last successful staging per source
  ALERT#{fingerprint}          SENT                  notifier de-duplication (expires via TTL)
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from datalake.aws import client

TTL_ATTRIBUTE = "expires_at"


class StateError(RuntimeError):
    """The state table could not be read or written."""


class ConditionFailed(StateError):
    """A conditional write found the item in another state than it required (a compare-and-set lost)."""


def is_condition_failure(exc: ClientError) -> bool:
    """Whether DynamoDB refused a write because its condition did not hold."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def utc_stamp(moment: datetime) -> str:
    """A UTC time as fixed-width text (microseconds always present), so stamps compare as strings, in Python and
    in DynamoDB conditions alike."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dataset_pk(source: str, dataset: str) -> str:
    return f"DATASET#{source}#{dataset}"


def _to_dynamo(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list | tuple):
        return {"L": [_to_dynamo(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {str(k): _to_dynamo(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def _from_dynamo(attr: dict[str, Any]) -> Any:
    ((kind, value),) = attr.items()
    if kind == "NULL":
        return None
    if kind == "N":
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "L":
        return [_from_dynamo(v) for v in value]
    if kind == "M":
        return {k: _from_dynamo(v) for k, v in value.items()}
    return value


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _to_dynamo(v) for k, v in values.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(v) for k, v in item.items()}


class Table:
    """One DynamoDB table. Its client is made on first use (the shared cached one, unless a test passes its own).

    Parameters
    ----------
    table_name: the table.
    dynamodb: a DynamoDB client (tests pass moto's or a fake); ``datalake.aws.client("dynamodb")`` otherwise.
    """

    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self.table_name = table_name
        self._ddb = dynamodb

    @property
    def ddb(self) -> Any:
        if self._ddb is None:
            self._ddb = client("dynamodb")
        return self._ddb

    def call(self, operation: str, failure: str, **kwargs: Any) -> dict[str, Any]:
        """One DynamoDB operation on this table (``TableName`` is added).

        Parameters
        ----------
        operation: the client method, e.g. ``"put_item"``.
        failure: what the error says before the cause, e.g. ``"cannot claim run id X in T"``.

        Raises
        ------
        ConditionFailed
            When the request's ``ConditionExpression`` did not hold (nothing was written).
        StateError
            When the table cannot be reached or refuses for another reason.
        """
        try:
            return getattr(self.ddb, operation)(TableName=self.table_name, **kwargs)
        except ClientError as exc:
            if "ConditionExpression" in kwargs and is_condition_failure(exc):
                raise ConditionFailed(f"{failure}: the condition {kwargs['ConditionExpression']} did not hold") from exc
            raise StateError(f"{failure}: {exc}") from exc
        except BotoCoreError as exc:
            raise StateError(f"{failure}: {exc}") from exc

    def query(self, pk: str, sk_prefix: str | None = None) -> list[dict[str, Any]]:
        """Every item of a partition (whose sort key starts with ``sk_prefix``), read consistently, all pages.

        Raises
        ------
        StateError
            When the table cannot be read.
        """
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": _to_dynamo(pk)}
        if sk_prefix:
            condition += " AND begins_with(sk, :sk)"
            values[":sk"] = _to_dynamo(sk_prefix)
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        while True:
            response = self.call("query", f"cannot query {pk} in {self.table_name}", **kwargs)
            items.extend(from_item(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


class StateStore(Table):
    """Thin adapter over the state table. Errors become StateError so record handlers fail and retry."""

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.call(
            "get_item",
            f"cannot read {pk}/{sk} from {self.table_name}",
            Key=to_item({"pk": pk, "sk": sk}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return from_item(item) if item else None

    def put(self, pk: str, sk: str, values: dict[str, Any]) -> None:
        self.call(
            "put_item", f"cannot write {pk}/{sk} to {self.table_name}", Item=to_item({**values, "pk": pk, "sk": sk})
        )

    def update(
        self,
        pk: str,
        sk: str,
        set_values: dict[str, Any] | None = None,
        add_values: dict[str, int] | None = None,
        condition: str | None = None,
        condition_values: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """SET and ADD attributes atomically; returns the item after the update.

        ``condition``: a DynamoDB condition expression over the item as it is (its values as ``:c_name`` in
        ``condition_values``), for a compare-and-set.

        Raises
        ------
        ConditionFailed
            When the condition does not hold (nothing was written).
        StateError
            When the table cannot be reached.
        """
        set_values, add_values = set_values or {}, add_values or {}
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        clauses_set, clauses_add = [], []
        for i, (k, v) in enumerate(set_values.items()):
            names[f"#s{i}"], values[f":s{i}"] = k, _to_dynamo(v)
            clauses_set.append(f"#s{i} = :s{i}")
        for i, (k, v) in enumerate(add_values.items()):
            names[f"#a{i}"], values[f":a{i}"] = k, _to_dynamo(v)
            clauses_add.append(f"#a{i} :a{i}")
        expression = " ".join(
            part
            for part in (
                f"SET {', '.join(clauses_set)}" if clauses_set else "",
                f"ADD {', '.join(clauses_add)}" if clauses_add else "",
            )
            if part
        )
        if not expression:
            raise ValueError("update needs at least one attribute")
        extra: dict[str, Any] = {}
        if condition:
            extra["ConditionExpression"] = condition
            values.update({k: _to_dynamo(v) for k, v in (condition_values or {}).items()})
        response = self.call(
            "update_item",
            f"cannot update {pk}/{sk} in {self.table_name}",
            Key=to_item({"pk": pk, "sk": sk}),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            **extra,
        )
        return from_item(response["Attributes"])

    def delete(self, pk: str, sk: str) -> None:
        self.call("delete_item", f"cannot delete {pk}/{sk} from {self.table_name}", Key=to_item({"pk": pk, "sk": sk}))
