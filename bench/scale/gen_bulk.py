"""A BLS bulk survey shaped from the real ``pr`` files, replicated to any number of observations.

Every real series of ``pr.series`` becomes ``replicas`` series (``PRS30006011`` -> ``PRS30006011000``,
``PRS30006011001``, ...) with the real series' codes (so every mapping file still decodes it) and the real
series' observations, values scaled by ``1 + replica / 1000``. Lines keep the real files' layout: padded cells,
CRLF line ends, files sorted by series, year and period as BLS sorts them. One replica is the real survey as it is:
115,482 observations (``pr.data.0.Current`` 38,412 + ``pr.data.1.AllData`` 77,070); 87 replicas are 10.05 million.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from bench.scale import paths

MAPPING_FILES = ("pr.class", "pr.duration", "pr.footnote", "pr.measure", "pr.period", "pr.seasonal", "pr.sector")
DATA_FILES = ("pr.data.0.Current", "pr.data.1.AllData")
SERIES_WIDTH = 17  # the real files pad series_id to 17 characters


def _grouped(lines: list[bytes]) -> dict[bytes, list[bytes]]:
    groups: dict[bytes, list[bytes]] = {}
    for line in lines:
        groups.setdefault(line.split(b"\t", 1)[0].strip(), []).append(line)
    return groups


def _series_id(real: bytes, replica: int, replicas: int) -> bytes:
    return real if replicas == 1 else real + b"%03d" % replica


def _scaled(value: bytes, replica: int) -> bytes:
    text = value.strip()
    if replica == 0 or text in (b"", b"-"):
        return value
    scaled = f"{float(text) * (1 + replica / 1000):.3f}".rstrip("0").rstrip(".")
    return scaled.encode().rjust(len(value))


def _replicated(path: Path, replicas: int, data: bool) -> Iterator[bytes]:
    lines = path.read_bytes().splitlines(keepends=True)
    yield lines[0]
    for real, group in _grouped(lines[1:]).items():
        for replica in range(replicas):
            new_id = _series_id(real, replica, replicas).ljust(SERIES_WIDTH)
            for line in group:
                cells = line.split(b"\t")
                cells[0] = new_id
                if data:
                    cells[3] = _scaled(cells[3], replica)
                yield b"\t".join(cells)


def generate_survey(target: Path, replicas: int) -> dict[str, int]:
    """Write the survey's files into ``target`` (a ``bls_bulk/pr`` folder); returns observations per data file."""
    source = paths.REAL_PR
    target.mkdir(parents=True, exist_ok=True)
    for name in MAPPING_FILES:
        shutil.copy2(source / name, target / name)
    counts = {}
    for name in ("pr.series", *DATA_FILES):
        partial = target / f".{name}.partial"
        rows = -1
        with partial.open("wb") as out:
            for line in _replicated(source / name, replicas, data=name in DATA_FILES):
                out.write(line)
                rows += 1
        partial.rename(target / name)
        counts[name] = rows
    return counts


def observations(replicas: int) -> int:
    """The survey's observations with ``replicas`` (without generating it)."""
    real = sum(max(0, len((paths.REAL_PR / n).read_bytes().splitlines()) - 1) for n in DATA_FILES)
    return real * replicas
