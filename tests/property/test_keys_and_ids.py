"""Hostile ids never reach an S3 key: dataset ids with ``../``, slashes, unicode, control characters or thousands of
characters are refused with a clear error, and every key built from an accepted id stays under its prefix."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from datalake.contracts import DATASET_ID_PATTERN, ExtractRequest, Source, validate_dataset_id
from datalake.layout import (
    bulk_mirror_key,
    landing_key,
    landing_part_key,
    manifest_key,
    mart_prefix,
    parse_landing_key,
    quarantine_prefix,
    staging_partition_prefix,
)

MOMENT = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
SHA = "ab" * 32
HOSTILE = [
    "../etc/passwd",
    "..",
    ".",
    "",
    "pr/../../marts",
    "a/b",
    "/absolute",
    "LNS14000000/",
    "..%2F..%2Fmarts",
    "%2e%2e",
    "ünïcødé",
    "ＬＮＳ14000000",  # full-width letters: \w would match them, the key pattern must not
    "LNS14000000\n",
    "LNS\x0014000000",
    "a" * 65,
    "a" * 10_000,
    "x\\..\\y",
    " LNS14000000",
    ".hidden",
    "-leading-dash",
]
SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_.=\-]+$")

# Ids shaped like the real ones, mixed with anything at all, with the hostile pieces spliced in.
ids = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=80),
    st.from_regex(r"[A-Za-z0-9_.\-/]{0,70}", fullmatch=True),
    st.builds(lambda a, b: f"{a}/../{b}", st.text(max_size=10), st.text(max_size=10)),
    st.from_regex(DATASET_ID_PATTERN, fullmatch=True),
)
sources = st.sampled_from(list(Source))


def assert_key_is_confined(key: str, prefix: str) -> None:
    """Under its prefix, no empty, '.' or '..' segment, only key-safe characters."""
    assert key.startswith(prefix), (key, prefix)
    segments = key.split("/")
    body = segments[:-1] if key.endswith("/") else segments
    assert all(s not in ("", ".", "..") for s in body), key
    assert all(SAFE_SEGMENT.fullmatch(s) for s in body), key


@pytest.mark.parametrize("dataset", HOSTILE, ids=lambda d: repr(d[:20]))
@pytest.mark.parametrize("source", list(Source), ids=str)
def test_each_hostile_id_is_refused_by_name(source, dataset):
    with pytest.raises(ValueError, match="dataset id") as refused:
        validate_dataset_id(source, dataset)
    assert repr(dataset) in str(refused.value)  # the message names the id it refused
    with pytest.raises(ValidationError, match="dataset"):
        ExtractRequest(run_id="20261121T080000Z-0a1b2c3d", source=source, dataset=dataset)
    for build in (
        lambda: landing_key(source, dataset, MOMENT, SHA),
        lambda: manifest_key(source, dataset, MOMENT, SHA),
        lambda: quarantine_prefix(source, dataset),
    ):
        with pytest.raises(ValueError):
            build()


@given(source=sources, dataset=ids)
@example(source=Source.BLS_BULK, dataset="pr")
@example(source=Source.SOCRATA, dataset="9uvn-hv6j")
def test_an_id_is_refused_or_every_key_built_from_it_stays_under_its_prefix(source, dataset):
    try:
        validate_dataset_id(source, dataset)
    except ValueError as exc:
        assert "dataset id" in str(exc)
        with pytest.raises(ValueError):
            landing_key(source, dataset, MOMENT, SHA)
        return
    assert ".." not in dataset and "/" not in dataset and len(dataset) <= 64
    prefix = f"landing/{source.value}/{dataset}/"
    for key in (
        landing_key(source, dataset, MOMENT, SHA),
        landing_part_key(source, dataset, MOMENT, SHA, 3, ".json"),
        manifest_key(source, dataset, MOMENT, SHA),
    ):
        assert_key_is_confined(key, prefix)
        assert parse_landing_key(key) == (source, dataset)
    assert_key_is_confined(quarantine_prefix(source, dataset), f"quarantine/{source.value}/{dataset}/")


@given(
    key=st.one_of(
        st.text(max_size=120),
        st.builds("/".join, st.lists(st.sampled_from(HOSTILE + ["landing", "bls_api", "pr", "x.json"]), max_size=6)),
    )
)
def test_a_landing_key_from_outside_is_parsed_only_when_it_is_confined(key):
    try:
        source, dataset = parse_landing_key(key)
    except ValueError as exc:
        assert "landing key" in str(exc) or "dataset id" in str(exc) or "source" in str(exc)
        return
    assert key.startswith(f"landing/{source.value}/{dataset}/") and ".." not in key.split("/")


@given(
    survey=ids,
    name=st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40), st.from_regex(r"pr\.[a-z.]{1,20}", fullmatch=True)),
)
@example(survey="pr", name="pr.data.0.Current")
@example(survey="pr", name="pr/../../staging")
def test_a_bulk_file_name_from_a_remote_listing_cannot_leave_the_mirror(survey, name):
    try:
        key = bulk_mirror_key(survey, name)
    except ValueError:
        return
    assert_key_is_confined(key, f"landing/bls_bulk/{survey}/")
    assert key.count("/") == 3  # landing/bls_bulk/{survey}/{file}: no sub-folder


@given(column=ids, value=st.one_of(ids, st.integers()))
def test_a_staging_partition_is_key_safe_or_refused(column, value):
    try:
        prefix = staging_partition_prefix("bls_observation", {column: value})
    except ValueError as exc:
        assert "key-safe" in str(exc)
        return
    assert_key_is_confined(prefix, "staging/bls_observation/")


@given(name=ids)
def test_a_mart_name_is_snake_case_or_refused(name):
    try:
        prefix = mart_prefix("reports", name)
    except ValueError as exc:
        assert "snake_case" in str(exc)
        return
    assert_key_is_confined(prefix, "marts/reports/")
