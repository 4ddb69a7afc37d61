"""A mart built from a large staging file in chunks of whole series, so memory holds one chunk.

The reports of the ``pr.data.0.Current`` file (``bls_best_year``, ``series_population``) compute per series. At
100 times today's data that one staging file holds 3.3 million rows, and reading it whole, selecting and building
took 2.3 GB, over the modeler's 1,536 MB (``make bench-scale`` measured it). A staging file is written sorted by
its natural key, so it can be read row group by row group, cut where a series ends; each chunk is built alone and
the results are joined. A mart declares it can be built so with ``MartSpec.chunk_by``; a file that is not sorted
by that column is read whole, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from modeler.adapters import NotGroupedBy, StagingFile
from modeler.partitions import landing_from_counts
from modeler.spec import Built, MartSpec, NoInputRows

if TYPE_CHECKING:
    from modeler.build import Rebuild


def chunk_source(spec: MartSpec, staging: dict[str, list[StagingFile]]) -> tuple[str, StagingFile] | None:
    """The one staging file the mart's chunked input reads, or None when the mart cannot be built in chunks."""
    if not spec.chunk_by:
        return None
    source = next((i for i in spec.inputs if i.layer == "staging"), None)
    if source is None:
        return None
    files = [f for name in sorted(staging) if source.matches(name) for f in staging[name]]
    return (files[0].table, files[0]) if len(files) == 1 else None


def build_in_chunks(
    rebuild: Rebuild, spec: MartSpec, staging: dict[str, list[StagingFile]], marts: dict[str, dict[str, Any]]
) -> tuple[pa.Table, dict[str, pa.Table], list[dict[str, Any]]] | None:
    """The mart built chunk by chunk, the inputs its checks see (the chunked input as its distinct keys) and its
    lineage entries; None when its input file is not sorted by ``chunk_by`` (then it is built whole)."""
    found = chunk_source(spec, staging)
    if found is None:
        return None
    name, f = found
    source = next(i for i in spec.inputs if i.layer == "staging")
    others = [i for i in spec.inputs if i is not source]
    tables, entries = rebuild.load_inputs(spec, others, staging, marts)
    parts, keys, counts, rows = [], [], [], 0
    try:
        for chunk in rebuild.lake.scan_staging(f, spec.chunk_by):
            selected = source.select(chunk) if source.select is not None else chunk
            if not selected.num_rows:
                continue
            rows += selected.num_rows
            keys.append(pc.unique(selected.column(spec.chunk_by)))
            counts.append(selected.group_by(["_source", "_run_id"], use_threads=False).aggregate([([], "count_all")]))
            try:
                result = spec.build({**tables, name: selected}, None)
            except NoInputRows:
                continue
            parts.append(result.table if isinstance(result, Built) else result)
    except NotGroupedBy:
        return None
    if not parts:
        raise NoInputRows(f"no rows of {name} to build {spec.name} from")
    distinct = pa.concat_arrays([k.combine_chunks() if isinstance(k, pa.ChunkedArray) else k for k in keys])
    checks_see = {**tables, name: pa.table({spec.chunk_by: distinct})}
    entries.append(
        {
            "layer": "staging",
            "table": name,
            "selection": source.selection,
            "rows": rows,
            "files": [{"key": f.key, "etag": f.etag}],
            "landing": landing_from_counts(pa.concat_tables(counts)),
        }
    )
    return pa.concat_tables(parts), checks_see, entries
