"""The catalog loader: the versioned list of every series and dataset the pipeline collects."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from datalake.contracts import Source, validate_dataset_id

DEFAULT_CATALOG = Path(__file__).with_name("catalog.toml")
MAX_UNKNOWN_SHOWN = 10  # an error names a few unknown ids and counts the rest: it stays one readable line


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the offending entry."""


@dataclass(frozen=True)
class CatalogEntry:
    source: Source
    dataset: str
    name: str
    group: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.source.value}/{self.dataset}"


@dataclass(frozen=True)
class Catalog:
    version: int
    entries: tuple[CatalogEntry, ...]

    def select(
        self, sources: Iterable[Source] | None = None, datasets: Iterable[str] | None = None
    ) -> list[CatalogEntry]:
        """Entries filtered by source and by dataset id (or ``source/dataset`` ref).

        Raises
        ------
        CatalogError
            When a requested dataset is not in the catalog, so a typo never silently selects nothing.
        """
        wanted_sources = set(sources) if sources else None
        chosen = [e for e in self.entries if wanted_sources is None or e.source in wanted_sources]
        if datasets:
            wanted = set(datasets)
            known = {e.dataset for e in chosen} | {e.ref for e in chosen}
            unknown = sorted(wanted - known)
            if unknown:
                shown = ", ".join(unknown[:MAX_UNKNOWN_SHOWN])
                more = f" and {len(unknown) - MAX_UNKNOWN_SHOWN} more" if len(unknown) > MAX_UNKNOWN_SHOWN else ""
                raise CatalogError(f"{len(unknown)} not in the catalog (for the selected sources): {shown}{more}")
            chosen = [e for e in chosen if e.dataset in wanted or e.ref in wanted]
        return chosen

    def by_source(self, source: Source) -> list[CatalogEntry]:
        return [e for e in self.entries if e.source is source]


def _entries_of(source: Source, blocks: list[dict]) -> Iterable[CatalogEntry]:
    for position, block in enumerate(blocks, start=1):
        if not isinstance(block, dict):
            raise CatalogError(f"[[{source.value}]] block #{position} is not a table")
        if "series" in block:
            group = block.get("group")
            for item in block["series"]:
                yield _entry(source, item, group, f"[[{source.value}]] group {group!r}")
        else:
            yield _entry(source, block, None, f"[[{source.value}]] block #{position}")


def _entry(source: Source, item: dict, group: str | None, where: str) -> CatalogEntry:
    dataset, name = item.get("id"), item.get("name")
    if not isinstance(dataset, str) or not dataset:
        raise CatalogError(f"{where}: an entry has no id: {item!r}")
    if not isinstance(name, str) or not name.strip():
        raise CatalogError(f"{where}: entry {dataset!r} has no human name")
    try:
        validate_dataset_id(source, dataset)
    except ValueError as exc:
        raise CatalogError(f"{where}: entry {dataset!r} is malformed: {exc}") from exc
    return CatalogEntry(source=source, dataset=dataset, name=name.strip(), group=group)


def parse_catalog(text: str) -> Catalog:
    """Parse and validate catalog TOML.

    Raises
    ------
    CatalogError
        On a TOML syntax error, an unknown source, a malformed or duplicate id, or a missing name.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"catalog is not valid TOML: {exc}") from exc
    version = raw.pop("version", None)
    if not isinstance(version, int) or version < 1:
        raise CatalogError("catalog needs an integer `version` >= 1")
    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    for key, blocks in raw.items():
        try:
            source = Source(key)
        except ValueError as exc:
            known = ", ".join(s.value for s in Source)
            raise CatalogError(f"unknown source [[{key}]] in the catalog (known: {known})") from exc
        if not isinstance(blocks, list):
            raise CatalogError(f"[[{key}]] must be an array of tables")
        for entry in _entries_of(source, blocks):
            if entry.ref in seen:
                raise CatalogError(f"duplicate catalog entry {entry.ref!r}")
            seen.add(entry.ref)
            entries.append(entry)
    if not entries:
        raise CatalogError("catalog has no entries")
    return Catalog(version=version, entries=tuple(entries))


@cache
def load_catalog(path: Path = DEFAULT_CATALOG) -> Catalog:
    return parse_catalog(Path(path).read_text(encoding="utf-8"))
