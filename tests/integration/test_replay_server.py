"""The replay server answers like the real APIs, over HTTP on 127.0.0.1, and lets hooks inject faults."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from localrun.replay import ReplayResponse, ReplayServer
from tests.unit.extractor.support import MISSING_SERIES, REPLAY, replay_dir_with

pytestmark = pytest.mark.integration

CONTACT = {"User-Agent": "odp-tests (+ops@example.org)"}


@pytest.fixture
def replay():
    with ReplayServer(REPLAY) as server:
        yield server


def bls(replay: ReplayServer, **payload) -> dict:
    response = requests.post(replay.environment()["BLS_API_URL"], json=payload, timeout=10)
    assert response.status_code == 200
    return response.json()


def test_environment_names_the_extractor_settings(replay):
    env = replay.environment()
    assert set(env) == {"BLS_API_URL", "BLS_BULK_URL", "DATAUSA_URL", "SOCRATA_URL"}
    assert all(url.startswith(f"http://127.0.0.1:{replay.port}/") for url in env.values())


def test_bls_answers_each_series_from_the_recordings_filtered_to_the_years(replay):
    answer = bls(replay, seriesid=["LNS14000000", "PRS30006032"], startyear="2015", endyear="2015")
    assert answer["status"] == "REQUEST_SUCCEEDED"
    unemployment, hours = answer["Results"]["series"]
    # LNS14000000 2015 comes from the AP recording (the ryansuhr one starts in 2020)
    assert [o["period"] for o in unemployment["data"]] == [f"M{m:02d}" for m in range(12, 0, -1)]
    assert unemployment["data"][0]["value"] == "5.0"
    assert "calculations" not in unemployment["data"][0] and "catalog" not in unemployment
    assert {o["year"] for o in hours["data"]} == {"2015"}
    assert answer["message"] == []


def test_a_series_no_recording_holds_is_answered_with_no_data(replay):
    answer = bls(replay, seriesid=["CUUR0000SA0"], startyear="2025", endyear="2026")
    assert answer["status"] == "REQUEST_SUCCEEDED"
    assert answer["Results"]["series"] == [{"seriesID": "CUUR0000SA0", "data": []}]
    assert answer["message"] == [
        "No Data Available for Series CUUR0000SA0 Year: 2025",
        "No Data Available for Series CUUR0000SA0 Year: 2026",
    ]


def test_a_recording_of_a_nonexistent_series_is_replayed(tmp_path):
    folder = replay_dir_with(tmp_path, (MISSING_SERIES, "bls_api"))
    with ReplayServer(folder) as server:
        answer = bls(server, seriesid=["CES9999999999"], startyear="2024", endyear="2026")
    assert answer["message"] == ["Series does not exist for Series CES9999999999"]
    assert answer["Results"]["series"] == [{"seriesID": "CES9999999999", "data": []}]


@pytest.mark.parametrize(("key", "max_series", "max_years"), [("0123456789abcdef", 50, 20), (None, 25, 10)])
def test_bls_limits_are_enforced(replay, key, max_series, max_years):
    extra = {"registrationkey": key} if key else {}
    too_many = bls(replay, seriesid=[f"CES{i:010d}" for i in range(max_series + 1)], **extra)
    assert too_many["status"] == "REQUEST_FAILED_INVALID_PARAMETERS"
    at_limit = bls(
        replay, seriesid=[f"CES{i:010d}" for i in range(max_series)], startyear="2020", endyear="2020", **extra
    )
    assert at_limit["status"] == "REQUEST_SUCCEEDED" and len(at_limit["Results"]["series"]) == max_series
    long_range = bls(replay, seriesid=["PRS30006032"], startyear="1990", endyear="2026", **extra)
    assert f"Year range has been reduced to the system-allowed limit of {max_years} years." in long_range["message"]
    assert max(int(o["year"]) for o in long_range["Results"]["series"][0]["data"]) == 1990 + max_years - 1
    assert replay.counts["bls_api"] == 3


def test_catalog_and_calculations_need_a_key(replay):
    keyed = bls(
        replay, seriesid=["LNS14000000"], startyear="2015", endyear="2015", catalog=True, registrationkey="k" * 32
    )
    assert keyed["Results"]["series"][0]["catalog"]["series_title"] == "(Seas) Unemployment Rate"
    keyless = bls(replay, seriesid=["LNS14000000"], startyear="2015", endyear="2015", catalog=True)
    assert "catalog" not in keyless["Results"]["series"][0]


def test_bulk_listing_files_and_refusals(replay):
    base = replay.environment()["BLS_BULK_URL"]
    listing = requests.get(base + "pr/", headers=CONTACT, timeout=10)
    assert listing.status_code == 200 and "[To Parent Directory]" in listing.text
    assert '<A HREF="/pub/time.series/pr/pr.series">pr.series</A><br>' in listing.text
    data = requests.get(base + "pr/pr.data.0.Current", headers=CONTACT, timeout=10)
    assert data.content == (REPLAY / "bls_bulk" / "pr" / "pr.data.0.Current").read_bytes()
    assert data.headers["Last-Modified"].endswith("GMT")
    assert requests.get(base + "pr/pr.data.0.Current", timeout=10).status_code == 403  # no contact: refused
    assert requests.get(base + "zz/", headers=CONTACT, timeout=10).status_code == 404
    assert requests.get(base + "pr/pr.nothing", headers=CONTACT, timeout=10).status_code == 404
    assert replay.counts["bls_bulk_listing"] == 2 and replay.counts["bls_bulk_file"] == 3


def test_socrata_paging_views_and_missing_datasets(replay):
    base = replay.environment()["SOCRATA_URL"]
    page = requests.get(
        base + "resource/utrz-jf79.json", params={"$order": ":id", "$limit": 10, "$offset": 55}, timeout=10
    )
    rows = json.loads((REPLAY / "socrata" / "utrz-jf79.json").read_bytes())
    assert page.json() == rows[55:62]
    default = requests.get(base + "resource/amca-cgrp.json", timeout=10).json()
    assert len(default) == 1000  # SODA's default limit
    assert requests.get(base + "api/views/utrz-jf79.json", timeout=10).json()["columns"][0]["fieldName"]
    assert requests.get(base + "resource/zz00-0404.json", timeout=10).status_code == 404
    assert requests.get(base + "api/views/zz00-0404.json", timeout=10).status_code == 404
    bad_order = requests.get(base + "resource/utrz-jf79.json", params={"$order": "municipi"}, timeout=10)
    assert bad_order.status_code == 400


def test_datausa_current_and_legacy_paths(replay):
    current = requests.get(replay.environment()["DATAUSA_URL"], params={"cube": "x"}, timeout=10)
    assert current.content == (REPLAY / "datausa" / "population.json").read_bytes()
    assert requests.get(replay.base_url + "/api/data", timeout=10).status_code == 200


def test_hooks_can_answer_change_or_pass_through(replay):
    seen = []

    def outer(request, proceed):
        seen.append(("outer", request.endpoint, request.number))
        return proceed()

    def second_attempt_clears(request, proceed):
        if request.endpoint == "datausa" and request.number == 1:
            return ReplayResponse(status=503, body=b"busy", headers={"Retry-After": "0"})
        answer = proceed()
        answer.headers["X-Replayed"] = "yes"
        return answer

    replay.add_hook(outer)
    replay.add_hook(second_attempt_clears)
    url = replay.environment()["DATAUSA_URL"]
    assert requests.get(url, timeout=10).status_code == 503
    second = requests.get(url, timeout=10)
    assert second.status_code == 200 and second.headers["X-Replayed"] == "yes"
    assert seen == [("outer", "datausa", 1), ("outer", "datausa", 2)]
    assert replay.request_count() == 2


def test_transport_faults(replay):
    url = replay.environment()["DATAUSA_URL"]
    replay.add_hook(lambda request, proceed: ReplayResponse(body=b'{"data": [1, 2, 3]}', truncate_after=5))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=10)
    replay.clear_hooks()
    replay.add_hook(lambda request, proceed: ReplayResponse(reset=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, timeout=10)
    replay.clear_hooks()
    replay.add_hook(lambda request, proceed: ReplayResponse(body=b"{}", delay_seconds=1.0))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url, timeout=(2, 0.3))
    replay.clear_hooks()
    replay.add_hook(lambda request, proceed: ReplayResponse(body=b"x" * 40, drip_bytes_per_second=100))
    started = time.monotonic()
    assert requests.get(url, timeout=10).content == b"x" * 40
    assert time.monotonic() - started >= 0.3


def test_the_server_listens_on_loopback_only(replay):
    assert replay._server is not None and replay._server.server_address[0] == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", replay.port), timeout=2):
        pass
