"""Published us-east-1 prices, and what one run costs at them (bench/README.md lists the prices and their sources).

The counts come from the run: Lambda invocations and their billed durations; every S3, DynamoDB, SQS and SNS call the
functions made; the SQS calls of the event source mappings (the local runner's receives, deletes and visibility
changes); the messages AWS itself put on queues (S3 notifications, SNS deliveries). Free tiers are left out: the
figure is what one more run costs an account already past them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

PRICES_AS_OF = "2026-12 (AWS pricing pages, US East (N. Virginia); DynamoDB on-demand rates since 2024-11-01)"
LAMBDA_GB_SECOND = 0.0000166667  # x86
LAMBDA_REQUEST = 0.20 / 1_000_000
S3_TIER1 = 0.005 / 1_000  # PUT, COPY, POST, LIST (multipart parts included)
S3_TIER2 = 0.0004 / 1_000  # GET, HEAD and every other request; DELETE is free
SQS_REQUEST = 0.40 / 1_000_000  # standard queue, per 64 KB chunk (every message here is smaller)
SNS_PUBLISH = 0.50 / 1_000_000  # standard topic; deliveries to SQS are free
SNS_EMAIL = 2.00 / 100_000
DDB_WRITE_UNIT = 0.625 / 1_000_000  # on-demand
DDB_READ_UNIT = 0.125 / 1_000_000

S3_TIER1_OPERATIONS = {
    "PutObject",
    "CopyObject",
    "PostObject",
    "ListObjects",
    "ListObjectsV2",
    "ListObjectVersions",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
}
S3_FREE_OPERATIONS = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload"}
DDB_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
DDB_READS = {"GetItem", "Query", "Scan"}
# Items here are under 1 KB (writes) and 4 KB (reads): one unit each; a transaction costs two units per item.
ALERT_TOPICS = ("alerts",)


@dataclass
class Counts:
    lambda_requests: int = 0
    gb_seconds: float = 0.0
    s3_tier1: int = 0
    s3_tier2: int = 0
    s3_free: int = 0
    sqs: int = 0
    sns_publish: int = 0
    sns_email: int = 0
    ddb_write_units: int = 0
    ddb_read_units: int = 0

    def cost(self) -> dict[str, float]:
        lines = {
            "lambda": self.lambda_requests * LAMBDA_REQUEST + self.gb_seconds * LAMBDA_GB_SECOND,
            "s3_requests": self.s3_tier1 * S3_TIER1 + self.s3_tier2 * S3_TIER2,
            "sqs": self.sqs * SQS_REQUEST,
            "sns": self.sns_publish * SNS_PUBLISH + self.sns_email * SNS_EMAIL,
            "dynamodb": self.ddb_write_units * DDB_WRITE_UNIT + self.ddb_read_units * DDB_READ_UNIT,
        }
        lines["total"] = sum(lines.values())
        return lines


def add_calls(counts: Counts, calls: dict[str, int], topics: dict[str, int]) -> None:
    """Price one invocation's AWS calls (``service:Operation`` -> count)."""
    for name, n in calls.items():
        service, operation = name.split(":", 1)
        if service == "s3":
            if operation in S3_FREE_OPERATIONS:
                counts.s3_free += n
            elif operation in S3_TIER1_OPERATIONS:
                counts.s3_tier1 += n
            else:
                counts.s3_tier2 += n
        elif service == "sqs":
            counts.sqs += n
        elif service == "sns" and operation == "Publish":
            counts.sns_publish += n
        elif service == "dynamodb":
            if operation in DDB_WRITES:
                counts.ddb_write_units += n
            elif operation == "TransactWriteItems":
                counts.ddb_write_units += 4 * n  # two items, two units each
            elif operation in DDB_READS:
                counts.ddb_read_units += n
    counts.sns_email += sum(n for topic, n in topics.items() if topic.endswith(ALERT_TOPICS))


def gb_seconds(memory_mb: int, seconds: float) -> float:
    """Billed GB-seconds: the duration rounded up to the millisecond, times the memory in GB."""
    return memory_mb / 1024 * (int(seconds * 1000 + 0.999999) / 1000)


def aws_enqueued(received: dict[str, int]) -> int:
    """Messages AWS put on the queues (S3 notifications to TransformQueue, SNS to ModelQueue and NotifyQueue)."""
    return sum(n for function, n in received.items() if function not in ("SchedulerFunction", "ExtractorFunction"))


def run_counts(invocations: list[Any], memory: dict[str, int], polling: Counter, received: dict[str, int]) -> Counts:
    """Every billed quantity of one pass."""
    counts = Counts()
    for inv in invocations:
        counts.lambda_requests += 1
        counts.gb_seconds += gb_seconds(memory[inv.function], inv.wall_s + inv.cold_import_s)
        add_calls(counts, inv.calls, inv.sns_topics)
    counts.sqs += sum(n for name, n in polling.items() if name.startswith("sqs:")) + aws_enqueued(received)
    return counts
