"""Glue: the tables whose columns are only known from the data (Socrata datasets), created or updated at staging.

The other staging tables are declared in stacks/catalog.yaml; every table's columns come from ``datalake.athena_types``.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from datalake.aws import client
from datalake.layout import staging_table_prefix
from transformer.schemas import TableSpec, glue_columns


class GlueError(RuntimeError):
    """The Glue catalog could not be read or updated."""


PARQUET_STORAGE = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}


class GlueCatalog:
    """Creates or updates the Glue table of a staging table whose schema is only known at run time."""

    def __init__(self, database: str, bucket: str, glue: Any | None = None) -> None:
        self.database = database
        self.bucket = bucket
        self._glue = glue

    @property
    def glue(self) -> Any:
        if self._glue is None:
            self._glue = client("glue")
        return self._glue

    def table_input(self, spec: TableSpec, description: str) -> dict[str, Any]:
        return {
            "Name": spec.name,
            "Description": description[:2048],
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in spec.partition_keys],
            "StorageDescriptor": {
                **PARQUET_STORAGE,
                "Columns": glue_columns(spec.schema),
                "Location": f"s3://{self.bucket}/{staging_table_prefix(spec.name)}",
            },
        }

    def ensure_table(self, spec: TableSpec, description: str) -> bool:
        """Create the table, or update it when its columns differ. Returns True when the catalog changed."""
        wanted = self.table_input(spec, description)
        try:
            try:
                current = self.glue.get_table(DatabaseName=self.database, Name=spec.name)["Table"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "EntityNotFoundException":
                    raise
                self.glue.create_table(DatabaseName=self.database, TableInput=wanted)
                return True
            columns = current.get("StorageDescriptor", {}).get("Columns", [])
            if [(c["Name"], c["Type"]) for c in columns] == [(c["Name"], c["Type"]) for c in glue_columns(spec.schema)]:
                return False
            self.glue.update_table(DatabaseName=self.database, TableInput=wanted)
            return True
        except (ClientError, BotoCoreError) as exc:
            raise GlueError(f"cannot register {self.database}.{spec.name} in Glue: {exc}") from exc
