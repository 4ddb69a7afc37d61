"""The landings behind events/transformer_*.json, built from tests/fixtures/transformer and the bundled pr release.

``python -m tests.unit.transformer.landing_fixtures`` rewrites the event files from these landings (their keys
carry content hashes); a test holds the files and the landings in step.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from datalake.contracts import Source
from tests.unit.transformer.support import (
    EVENTS,
    FIXTURES,
    PR_2026,
    TransformerAws,
    s3_record,
    s3_test_event_body,
    sqs_record,
    transformer_aws,
)

LANDINGS_EVENT = EVENTS / "transformer_landings.json"
DUPLICATES_EVENT = EVENTS / "transformer_duplicates.json"
API_SERIES = "LNS14000000"
SOCRATA_ID = "9uvn-hv6j"


def commit_all(aws: TransformerAws) -> dict[str, str]:
    """Commit one landing per source; returns {name: manifest key}."""
    response = (FIXTURES / "ryansuhr_bls_api_v2_response_2024-12-13.json").read_bytes()  # 5 series, as received
    return {
        "bls_bulk": aws.landings.pr_release(PR_2026),
        "bls_api": aws.landings.bls_api(API_SERIES, [response]),
        "datausa": aws.landings.single(
            Source.DATAUSA,
            "population",
            (FIXTURES / "tesseract_jsonrecords_acs_yg_total_population_1_Nation_Year.json").read_bytes(),
        ),
        "socrata": aws.landings.socrata(
            SOCRATA_ID,
            [(FIXTURES / f"{SOCRATA_ID}.json").read_bytes()],
            (FIXTURES / f"{SOCRATA_ID}.views.json").read_bytes(),
        ),
    }


def _notification(aws: TransformerAws, key: str, message_id: str) -> dict[str, Any]:
    head = aws.s3.head_object(Bucket=aws.bucket, Key=key)
    record = s3_record(aws.bucket, key, head["ETag"].strip('"'), head["ContentLength"])
    return sqs_record({"Records": [record]}, message_id)


def build_events(aws: TransformerAws, keys: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    landings = [sqs_record(s3_test_event_body(aws.bucket), "0b5e0c1d-0000-4000-8000-000000000000")]
    for i, name in enumerate(("bls_bulk", "bls_api", "datausa", "socrata"), start=1):
        landings.append(_notification(aws, keys[name], f"0b5e0c1d-0000-4000-8000-00000000000{i}"))
    duplicates = [_notification(aws, keys["bls_api"], f"0b5e0c1d-0000-4000-8000-00000000001{i}") for i in range(3)]
    return {"Records": landings}, {"Records": duplicates}


def main() -> int:
    with transformer_aws() as aws:
        landings, duplicates = build_events(aws, commit_all(aws))
    LANDINGS_EVENT.write_text(json.dumps(landings, indent=2) + "\n")
    DUPLICATES_EVENT.write_text(json.dumps(duplicates, indent=2) + "\n")
    print(f"wrote {LANDINGS_EVENT.name} and {DUPLICATES_EVENT.name}")
    return 0


if __name__ == "__main__":
    import os

    from tests.env import TEST_ENV

    os.environ.update(TEST_ENV)
    sys.exit(main())
