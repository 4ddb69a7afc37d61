"""The catalog: the shipped file is valid and complete; a bad catalog fails at load naming the entry."""

from __future__ import annotations

import pytest

from datalake.catalog import CatalogError, load_catalog, parse_catalog
from datalake.contracts import Source


def test_shipped_catalog_covers_every_source_with_68_plus_series():
    catalog = load_catalog()
    api = catalog.by_source(Source.BLS_API)
    assert len(api) >= 68
    ids = {e.dataset for e in api}
    # the families the catalog promises: labour force, payrolls, CPI, PPI, JOLTS, earnings, productivity
    for prefix in ("LNS", "CES", "CUUR", "WPU", "JTS", "PRS"):
        assert any(i.startswith(prefix) for i in ids), prefix
    assert "PRS30006032" in ids
    assert [e.dataset for e in catalog.by_source(Source.BLS_BULK)] == ["pr"]
    assert [e.dataset for e in catalog.by_source(Source.DATAUSA)] == ["population"]
    assert {"ivft-vegh", "9uvn-hv6j", "utrz-jf79", "amca-cgrp"} <= {
        e.dataset for e in catalog.by_source(Source.SOCRATA)
    }
    assert all(e.name for e in catalog.entries)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'version = 1\n[[bls_api]]\nseries = [{id = "LNS14000000", name = "a"}, {id = "LNS14000000", name = "b"}]',
            "duplicate catalog entry 'bls_api/LNS14000000'",
        ),
        ('version = 1\n[[ftp]]\nid = "x"\nname = "y"', "unknown source [[ftp]]"),
        ('version = 1\n[[bls_api]]\nseries = [{id = "lns-14", name = "lower case"}]', "entry 'lns-14' is malformed"),
        ('version = 1\n[[socrata]]\nid = "../../etc"\nname = "escape"', "entry '../../etc' is malformed"),
        ('version = 1\n[[socrata]]\nid = "9uvn-hv6j"', "entry '9uvn-hv6j' has no human name"),
        ('[[datausa]]\nid = "population"\nname = "p"', "needs an integer `version`"),
        ("version = 1\n[[bls_api\n", "not valid TOML"),
    ],
)
def test_bad_catalog_fails_at_load_naming_the_entry(text, message):
    with pytest.raises(CatalogError) as raised:
        parse_catalog(text)
    assert message in str(raised.value)


def test_select_refuses_unknown_datasets():
    catalog = load_catalog()
    assert [e.dataset for e in catalog.select(datasets=["bls_api/LNS14000000"])] == ["LNS14000000"]
    assert {e.source for e in catalog.select(sources=[Source.SOCRATA])} == {Source.SOCRATA}
    with pytest.raises(CatalogError, match="NOPE"):
        catalog.select(datasets=["NOPE"])
