"""TransformerFunction: landing manifests become validated, typed, deduplicated Parquet in staging/."""

from datalake.arrow import skip_pandas_probe

skip_pandas_probe()  # before any module of the package hands pyarrow a Python value
