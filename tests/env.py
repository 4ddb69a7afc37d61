"""The environment every test (and the cold-import benchmark) runs handlers with: settings are read at import."""

TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's convention; not a secret
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "STAGE": "dev",
    "POWERTOOLS_SERVICE_NAME": "test",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "OpenDataPipeline",
    "LAKE_BUCKET": "test-lake",
    "STATE_TABLE": "test-state",
    "IDEMPOTENCY_TABLE": "test-idempotency",
    "PIPELINE_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:test-pipeline",
    "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:test-alerts",
    "EXTRACT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-extract",
    "EXTRACT_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/test-extract-dlq",
    "CONTACT_EMAIL": "tests@example.org",
    "BLS_API_KEY_PARAM": "/test/bls/api-key",
    "SOCRATA_APP_TOKEN_PARAM": "/test/socrata/app-token",
    "WEBHOOK_URL_PARAM": "/test/notifier/webhook-url",
    "GLUE_DATABASE": "opendata_test",
}
