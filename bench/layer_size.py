"""The AWS SDK for pandas managed layer, rebuilt from its recipe, to size our packages with it.

    python -m bench.layer_size [--work DIR]   (about 100 MB of wheels from PyPI; writes bench/layer_size.json)

The layer cannot be downloaded without an AWS account, and its unzipped size is published nowhere; the zip of each
release is (on the release page: 51.3 MB for 3.16.0, py3.13 x86_64). So the layer is rebuilt the way its build
script (aws-sdk-pandas building/lambda/build-lambda-layer.sh) builds it: ``pip install`` of the release with its
Lambda extras and the pinned pyarrow, resolved as on the release day (``--uploaded-prior-to``, the date in
ops/layers.toml), then the script's trims: boto3, botocore, urllib3 and s3transfer removed (the runtime has them),
tests and bytecode deleted, shared libraries stripped. One difference is approximated: the layer builds pyarrow from
source without Flight, Gandiva, ORC or Substrait, so those parts of the pyarrow wheel are dropped. The zip of the
result is compared with the published zip size, as a check of the rebuild.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "layer_size.json"

RELEASE = "3.16.1"
RELEASE_DAY_END = "2026-05-08T00:00:00Z"  # 3.16.1's wheel was built on 2026-05-07 (ops/layers.toml)
PYARROW = "22.0.0"
EXTRAS = "redshift,mysql,postgres,gremlin,opensearch,openpyxl"
PUBLISHED_ZIP_MB = {"3.16.0": 51.3}  # the release page's awswrangler-layer-<release>-py3.13.zip
REMOVED_BY_RECIPE = ("boto3", "botocore", "urllib3", "s3transfer")
NOT_IN_SOURCE_BUILT_PYARROW = ("flight", "substrait", "gandiva", "_orc", "/include/")


def _install(target: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--target",
        str(target),
        "--uploaded-prior-to",
        RELEASE_DAY_END,
        "--python-version",
        "3.13",
        "--platform",
        "manylinux_2_28_x86_64",
        "--platform",
        "manylinux_2_17_x86_64",
        "--platform",
        "manylinux2014_x86_64",
        "--only-binary=:all:",
        f"awswrangler[{EXTRAS}]=={RELEASE}",
        f"pyarrow=={PYARROW}",
    ]
    subprocess.run(command, check=True, env={**_env(), "PIP_CONSTRAINT": ""})


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _trim(python: Path) -> dict[str, int]:
    """The build script's trims, applied in place; returns what was removed, by kind."""
    removed = {"runtime_packages": 0, "tests_and_bytecode": 0, "pyarrow_parts": 0}
    for entry in python.iterdir():
        if entry.name.split("-")[0].split(".")[0].lower() in REMOVED_BY_RECIPE:
            removed["runtime_packages"] += 1
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for path in sorted(python.rglob("*"), reverse=True):
        text = path.as_posix()
        if not path.is_file():
            continue
        if "/tests/" in text or "/__pycache__/" in text or path.suffix in {".pyc", ".pyo"}:
            path.unlink()
            removed["tests_and_bytecode"] += 1
        elif "/pyarrow" in text and any(part in text for part in NOT_IN_SOURCE_BUILT_PYARROW):
            path.unlink()
            removed["pyarrow_parts"] += 1
    strip = shutil.which("strip")
    if strip:
        for path in python.rglob("*.so*"):
            if path.is_file() and ".libs/" not in path.as_posix():
                subprocess.run([strip, str(path)], capture_output=True, check=False)
    return removed


def rebuild(work: Path) -> dict[str, Any]:
    """Rebuild the layer under ``work`` and measure it."""
    python = work / "python"
    if python.exists():
        shutil.rmtree(python)
    _install(python)
    removed = _trim(python)
    unzipped = sum(p.stat().st_size for p in python.rglob("*") if p.is_file())
    archive = work / f"awswrangler-layer-{RELEASE}-py3.13.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(python.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(work).as_posix())
    versions = sorted(p.name.removesuffix(".dist-info") for p in python.glob("*.dist-info"))
    return {
        "release": RELEASE,
        "resolved_as_of": RELEASE_DAY_END,
        "unzipped_mb": round(unzipped / 2**20, 1),
        "zip_mb": round(archive.stat().st_size / 2**20, 1),
        "published_zip_mb": PUBLISHED_ZIP_MB,
        "stripped": shutil.which("strip") is not None,
        "removed": removed,
        "distributions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.layer_size", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="folder for the rebuilt layer (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = rebuild(args.work or Path(tmp))
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "distributions"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
