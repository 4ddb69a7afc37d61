"""ModelerFunction: staging tables become marts and reports, behind quality gates."""

from datalake.arrow import skip_pandas_probe

skip_pandas_probe()  # before any module of the package hands pyarrow a Python value
