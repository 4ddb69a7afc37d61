"""Oversized and non-UTF-8 source answers through the real extractor handler (moto in-process; the sources are a
requests transport adapter, no sockets): a payload past ``ExtractorSettings.max_payload_bytes`` goes to the DLQ with
its reason and lands nothing; bytes that are not UTF-8 fail the record with a reason (or land raw, for the
transformer to judge), and nothing is ever written outside the dataset's own landing prefix."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from requests.adapters import BaseAdapter

from tests.property.strategies import NOT_UTF8
from tests.unit.extractor.support import create_test_aws, request, sqs_event

LIMIT = 4096  # MAX_PAYLOAD_BYTES for these tests (the setting's floor is 1024)
FEWER = settings(
    max_examples=15,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
VIEWS = json.dumps({"id": "9uvn-hv6j", "columns": [{"fieldName": "comarca", "dataTypeName": "text"}]}).encode()


class FakeSource(BaseAdapter):
    """A requests transport that answers from a function of the request: (status, body, headers)."""

    def __init__(self, answer: Callable[[requests.PreparedRequest], tuple[int, bytes, dict[str, str]]]) -> None:
        super().__init__()
        self.answer = answer
        self.requests: list[str] = []

    def send(self, request: requests.PreparedRequest, **_kwargs: Any) -> requests.Response:
        self.requests.append(request.url or "")
        status, body, headers = self.answer(request)
        response = requests.Response()
        response.status_code, response.url, response.request = status, request.url, request
        response.headers.update({"Content-Type": "application/json", **headers})
        response.raw = io.BytesIO(body)
        return response

    def close(self) -> None:
        return None


@pytest.fixture
def extractor() -> Iterator[tuple[Any, Any, Callable[[FakeSource], None]]]:
    """The extractor handler on moto, its settings with a small payload limit; ``use(source)`` plugs a source in."""
    from extractor.http import HttpClient
    from tests.unit.extractor.support import bound_handler, quick_session

    env = {"MAX_PAYLOAD_BYTES": str(LIMIT), "SOCRATA_PAGE_SIZE": "2"}
    env.update(dict.fromkeys(("BLS_BULK_URL", "SOCRATA_URL"), "https://source.invalid/"))
    env.update(DATAUSA_URL="https://source.invalid/tesseract/data.jsonrecords")
    env.update(BLS_API_URL="https://source.invalid/publicAPI/v2/timeseries/data/")
    with mock_aws(), ExitStack() as stack:
        aws = create_test_aws()
        handler = stack.enter_context(bound_handler(aws, None, env))

        def use(source: FakeSource) -> None:
            session = quick_session()
            session.mount("https://", source)
            http = HttpClient(session, max_bytes=LIMIT)
            stack.enter_context(bound_handler(aws, None, env, http=lambda: http))

        yield handler, aws, use


def landing_keys(aws: Any) -> list[str]:
    return aws.keys("")


def run_once(handler: Any, aws: Any, context: Any, source: str, dataset: str, run: int) -> dict[str, Any]:
    run_id = f"20261121T08{run // 100 % 100:02d}{run % 100:02d}Z-0a1b2c3d"
    event = sqs_event([request(source, dataset, run_id=run_id)])
    return handler.lambda_handler(event, context)


def test_a_payload_past_the_limit_goes_to_the_dlq_with_its_reason_and_lands_nothing(extractor, lambda_context):
    handler, aws, use = extractor
    use(FakeSource(lambda r: (200, b'{"data": [' + b'{"Year": 2020},' * LIMIT + b"{}]}", {})))

    response = run_once(handler, aws, lambda_context, "datausa", "population", 1)

    assert response == {"batchItemFailures": []}  # permanent: retrying cannot make it smaller
    [dead] = aws.dlq_messages()
    assert f"larger than {LIMIT} bytes" in dead["MessageAttributes"]["failure_reason"]["StringValue"]
    assert landing_keys(aws) == []


def test_the_limit_holds_per_response_so_socrata_pages_past_it_in_total_land_whole_in_parts(extractor, lambda_context):
    # The limit bounds what one response may spool; a large dataset is paged and lands page by page (a 5-million-row
    # dataset is gigabytes in total), so pages that are each under the limit but over it together land whole.
    handler, aws, use = extractor
    count = b'[{"row_count": "6"}]'  # the dataset's row count (asked before and after paging)

    def page(url: str) -> bytes:  # 2 rows a page, 3 pages, each with its own :id, each a third of the limit
        offset = int(parse_qs(urlsplit(url).query).get("$offset", ["0"])[0])
        rows = [{":id": f"row-{i}", "comarca": "x" * (LIMIT // 3)} for i in range(offset, min(offset + 2, 6))]
        return json.dumps(rows).encode()

    def answer(r: requests.PreparedRequest) -> tuple[int, bytes, dict[str, str]]:
        url = r.url or ""
        return 200, VIEWS if "/api/views/" in url else (count if "row_count" in url else page(url)), {}

    use(FakeSource(answer))

    response = run_once(handler, aws, lambda_context, "socrata", "9uvn-hv6j", 2)

    assert response == {"batchItemFailures": []}
    assert aws.dlq_messages() == []
    [manifest_key] = [k for k in landing_keys(aws) if k.endswith("manifest.json")]
    manifest = json.loads(aws.s3.get_object(Bucket=aws.bucket, Key=manifest_key)["Body"].read())
    data = [part for part in manifest["parts"] if part["role"] == "data"]
    assert sum(part["records"] for part in data) == 6 and manifest["proof"]["count_before"] == 6
    assert sum(part["bytes"] for part in data) > LIMIT  # over the limit in total, each response under it


@FEWER
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.sampled_from(NOT_UTF8).map(lambda bad: b'[{"comarca": "Vall' + bad + b's"}]'),
        st.sampled_from(NOT_UTF8).map(lambda bad: bad + b"[]"),
    ),
    where=st.sampled_from(["rows", "views"]),
)
def test_socrata_bytes_that_are_not_json_or_not_utf8_fail_with_a_reason_and_never_land_outside(
    extractor, lambda_context, body, where
):
    """Found by this test: a page that is not UTF-8 raised a bare UnicodeDecodeError in the extractor, which fails
    the record with no reason logged anywhere (it then reaches the DLQ after 8 receives, unexplained)."""
    from datalake.observability import logger

    handler, aws, use = extractor
    page = b'[{"comarca": "x"}]'
    use(
        FakeSource(
            lambda r: (
                200,
                (body if where == "views" else VIEWS)
                if "/api/views/" in (r.url or "")
                else (body if where == "rows" else page),
                {},
            )
        )
    )
    logs = io.StringIO()
    previous = logger.registered_handler.setStream(logs)
    try:
        response = run_once(handler, aws, lambda_context, "socrata", "9uvn-hv6j", abs(hash((body, where))) % 5000)
    finally:
        logger.registered_handler.setStream(previous)

    outside = [k for k in landing_keys(aws) if not k.startswith("landing/socrata/9uvn-hv6j/")]
    assert outside == []
    if response["batchItemFailures"]:  # failed, to be retried: the logs say why
        warnings = [json.loads(line) for line in logs.getvalue().splitlines() if '"reason"' in line]
        assert warnings and all(w["dataset"] == "9uvn-hv6j" for w in warnings), logs.getvalue()[-2000:]
    else:  # landed raw (valid UTF-8 JSON after all) or dead-lettered with a reason
        dead = aws.dlq_messages()
        assert all(m["MessageAttributes"]["failure_reason"]["StringValue"] for m in dead)


def test_a_non_utf8_bls_api_answer_fails_the_record_with_a_reason(extractor, lambda_context):
    from datalake.observability import logger

    handler, aws, use = extractor
    use(FakeSource(lambda r: (200, b'{"status": "REQUEST_SUCCEEDED", "message": ["caf\xe9"], "Results": {}}', {})))
    logs = io.StringIO()
    previous = logger.registered_handler.setStream(logs)
    try:
        response = run_once(handler, aws, lambda_context, "bls_api", "LNS14000000", 3)
    finally:
        logger.registered_handler.setStream(previous)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["m-0"]
    reasons = [json.loads(line)["reason"] for line in logs.getvalue().splitlines() if '"reason"' in line]
    assert any("not JSON" in reason for reason in reasons), reasons
    assert landing_keys(aws) == []
