"""pyarrow without pandas, for the functions that use pyarrow and never pandas (the transformer and the modeler).

The first time pyarrow converts a Python value (``pa.scalar``, ``pa.array``, ``pa.table``), it imports pandas, if
pandas is installed, only to ask whether the value is a pandas object. The AWS SDK for pandas layer, which brings
pyarrow to these functions, installs pandas too, so every cold start paid for a pandas import that nothing used
(about 0.3-0.5 s, counted by the cold-import bar of ``make bench``: pandas loads only where a code path needs it).
``skip_pandas_probe`` lets pyarrow take that first look while pandas cannot be found, so pyarrow notes it as absent
and does not look again on its own. An explicit conversion (``Table.to_pandas``, ``Table.from_pandas``) still
imports pandas when it is asked for.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from typing import Any


class _PandasHidden(MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is hidden while pyarrow probes for it")


def skip_pandas_probe() -> None:
    """Make pyarrow's lazy pandas probe find no pandas (a no-op once pandas is loaded or probed)."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    hidden = _PandasHidden()
    sys.meta_path.insert(0, hidden)
    try:
        pa.scalar(None)  # pyarrow's first look for pandas happens here
    finally:
        sys.meta_path.remove(hidden)
