"""The cold-start floor: boto3 plus Powertools' Logger, Metrics and Tracer (docs/bars.md)."""

import boto3  # noqa: F401
from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics(namespace="Bench")
tracer = Tracer()
