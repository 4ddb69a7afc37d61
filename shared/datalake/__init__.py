"""Shared layer of the open-data pipeline: contracts, settings, S3 layout, adapters and observability."""

__version__ = "0.1.0"
