"""Console links, built from the region and the resource names the template derives from its prefix.

Pure: the names follow template.yaml and stacks/monitoring.yaml (``${AWS::StackName}-${Stage}-<name>``, the prefix
computed in the root and passed to the nested stack); a test holds the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

# Function short names (``{prefix}-{name}``) per pipeline stage, and queue short names per logical id.
FUNCTIONS = {
    "scheduler": "SchedulerFunction",
    "extractor": "ExtractorFunction",
    "transformer": "TransformerFunction",
    "modeler": "ModelerFunction",
    "notifier": "NotifierFunction",
}
QUEUES = {
    "extract": "ExtractQueue",
    "extract-dlq": "ExtractDLQ",
    "transform": "TransformQueue",
    "transform-dlq": "TransformDLQ",
    "model": "ModelQueue",
    "model-dlq": "ModelDLQ",
    "notify": "NotifyQueue",
    "notify-dlq": "NotifyDLQ",
    "scheduler-dlq": "SchedulerDLQ",
}
DLQ_OF_STAGE = {
    "scheduler": "scheduler-dlq",
    "extractor": "extract-dlq",
    "transformer": "transform-dlq",
    "modeler": "model-dlq",
    "notifier": "notify-dlq",
}
RUNBOOK = "docs/operations.md"


def _path(value: str) -> str:
    """CloudWatch's console encodes the path fragment twice, with '$' standing in for '%'."""
    return quote(quote(value, safe=""), safe="").replace("%", "$")


@dataclass(frozen=True)
class ConsoleLinks:
    region: str
    account_id: str
    prefix: str  # ${AWS::StackName}-${Stage}
    lake_bucket: str | None = None
    log_group_prefix: str | None = None  # "/opendata/<prefix>-<stack id tail>": groups are "<it>/<function>"

    @property
    def _console(self) -> str:
        return f"https://{self.region}.console.aws.amazon.com"

    def function_name(self, stage: str) -> str:
        return f"{self.prefix}-{stage}"

    def queue_name(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    def logs(self, stage: str) -> str:
        if self.log_group_prefix:
            group = f"{self.log_group_prefix}/{stage}"
        else:
            group = f"/aws/lambda/{self.function_name(stage)}"
        return f"{self._console}/cloudwatch/home?region={self.region}#logsV2:log-groups/log-group/{_path(group)}"

    def logs_query(self, run_id: str) -> str:
        """The Logs Insights query that shows one run across every function (paste it into Logs Insights)."""
        return f'fields @timestamp, service, level, message | filter correlation_id = "{run_id}" | sort @timestamp'

    def queue(self, short: str) -> str:
        url = f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{self.queue_name(short)}"
        return f"{self._console}/sqs/v3/home?region={self.region}#/queues/{quote(url, safe='')}"

    def dashboard(self) -> str:
        return f"{self._console}/cloudwatch/home?region={self.region}#dashboards/dashboard/{self.prefix}-pipeline"

    def alarm(self, name: str) -> str:
        return f"{self._console}/cloudwatch/home?region={self.region}#alarmsV2:alarm/{quote(name, safe='')}"

    def s3(self, key: str) -> str | None:
        """The object (or the prefix, for a key ending in '/') in the S3 console; None without a bucket."""
        if not self.lake_bucket:
            return None
        if key.endswith("/"):
            return (
                f"https://s3.console.aws.amazon.com/s3/buckets/{self.lake_bucket}"
                f"?region={self.region}&prefix={quote(key, safe='/')}"
            )
        return (
            f"https://s3.console.aws.amazon.com/s3/object/{self.lake_bucket}"
            f"?region={self.region}&prefix={quote(key, safe='/')}"
        )

    def s3_uri(self, key: str) -> str:
        return f"s3://{self.lake_bucket}/{key}" if self.lake_bucket else key
