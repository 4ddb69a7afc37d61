"""The reports of one large staging file are built in chunks of whole series: the same answer as built whole."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from modeler import domain as d
from modeler.adapters import LakeMarts, NotGroupedBy, StagingFile
from tests.unit.modeler.staging_builder import PR_CURRENT, RUN_ID, bulk_observations

PARTITION = {"source_kind": "bulk", "survey": "pr"}


def staging_file(modeler_aws, table: pa.Table) -> StagingFile:
    key = modeler_aws.staging.write("bls_observation", table, PARTITION)
    size = modeler_aws.head(key)["ContentLength"]
    return StagingFile(table="bls_observation", key=key, etag="e", size=size, partition=PARTITION)


def test_chunks_end_where_a_series_ends_and_the_report_equals_the_whole_build(modeler_aws):
    current = bulk_observations(PR_CURRENT, RUN_ID)
    f = staging_file(modeler_aws, current)
    lake = LakeMarts(modeler_aws.bucket)

    chunks = list(lake.scan_staging(f, "series_id", batch_rows=5_000))

    assert len(chunks) > 5
    assert sum(c.num_rows for c in chunks) == current.num_rows == 38_412
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before["series_id"][-1].as_py() < after["series_id"][0].as_py()  # no series split in two
    whole = d.bls_best_year(lake.read_staging([f]))
    in_chunks = pa.concat_tables([d.bls_best_year(chunk) for chunk in chunks])
    assert in_chunks.sort_by("series_id").equals(whole.sort_by("series_id"))
    assert in_chunks.num_rows == 282


def test_a_file_not_sorted_by_series_is_refused_for_chunks(modeler_aws):
    current = bulk_observations(PR_CURRENT, RUN_ID)
    shuffled = current.take(pc.sort_indices(current, [("year", "ascending")]))
    f = staging_file(modeler_aws, shuffled)
    with pytest.raises(NotGroupedBy):
        list(LakeMarts(modeler_aws.bucket).scan_staging(f, "series_id", batch_rows=5_000))
