"""The transformer and the modeler use pyarrow and never pandas: pyarrow must not import pandas for them.

pyarrow imports pandas (when installed, as in the AWS SDK for pandas layer) on its first conversion of a Python
value, only to check whether the value is a pandas object. ``datalake.arrow.skip_pandas_probe`` runs where each
handler loads its pyarrow code, on first use (not at import: pyarrow is not part of their cold start). Each check
runs in a fresh interpreter: this test process has pandas loaded already.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import ROOT

PATHS = [ROOT / "shared", ROOT / "services" / "transformer", ROOT / "services" / "modeler", ROOT]


def run_fresh(code: str) -> str:
    prelude = f"import sys\nsys.path[:0] = {[str(p) for p in PATHS]!r}\n"
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_real_staging_leaves_pandas_unloaded():
    out = run_fresh(
        """
        from pathlib import Path
        import os, tempfile
        from tests.env import TEST_ENV
        os.environ.update(TEST_ENV)
        import transformer.handler
        assert "pyarrow" not in sys.modules  # not at cold start
        transformer.handler.service()  # the first landing loads the staging code
        from bench.staging_entry import stage_file
        result = stage_file("bls_bulk", Path("data/replay/bls_bulk/pr/pr.data.0.Current"), Path(tempfile.mkdtemp()))
        print(result["rows"], "pandas" in sys.modules)
        """
    )
    assert out == "38412 False"


def test_the_modeler_builds_a_report_without_pandas():
    out = run_fresh(
        """
        import modeler.handler
        assert "pyarrow" not in sys.modules  # not at cold start
        import modeler.invocations
        modeler.invocations.load_build_code()
        import pyarrow as pa
        from modeler import domain
        population = pa.table({"year": [2013, 2014], "population": [316128839, 318857056]})
        print(domain.population_stats(population).num_rows >= 0, "pandas" in sys.modules)
        """
    )
    assert out == "True False"


def test_plain_pyarrow_imports_pandas_and_explicit_conversions_still_work_after_the_probe():
    # the control: pyarrow alone loads pandas on its first conversion
    assert run_fresh("import pyarrow as pa\npa.scalar(None)\nprint('pandas' in sys.modules)") == "True"
    out = run_fresh(
        """
        from datalake.arrow import skip_pandas_probe
        skip_pandas_probe()
        import pyarrow as pa
        table = pa.table({"a": [1, 2]})
        before = "pandas" in sys.modules
        frame = table.to_pandas()
        print(before, type(frame).__name__, pa.Table.from_pandas(frame).num_rows)
        """
    )
    assert out == "False DataFrame 2"
