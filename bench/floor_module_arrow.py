"""The cold-start floor of the data functions: the floor plus `import pyarrow.parquet` (docs/bars.md)."""

import pyarrow.parquet  # noqa: F401

import bench.floor_module  # noqa: F401
