"""A fault plan, installed: the source faults as a replay hook, the delivery and AWS faults around a runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localrun.faults.aws import AwsFaults, S3Writes, crash_tolerant
from localrun.faults.delivery import DeliveryFaults
from localrun.faults.source import FaultSource
from localrun.faults.spec import PlanDocument
from localrun.replay import ReplayServer

if TYPE_CHECKING:
    from localrun.runner import Runner


class FaultPlan:
    """A fault plan: the source faults as a replay hook, the delivery and AWS faults around a runner."""

    def __init__(self, document: PlanDocument) -> None:
        self.document = document
        self.source = FaultSource(document.source)
        self.delivery = DeliveryFaults(document.delivery)
        self.aws: AwsFaults | None = None
        self.writes: S3Writes | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultPlan:
        """Raises pydantic.ValidationError on an unknown fault, endpoint or field."""
        return cls(PlanDocument.model_validate(data))

    @classmethod
    def load(cls, path: Path) -> FaultPlan:
        return cls(PlanDocument.model_validate_json(Path(path).read_text()))

    @property
    def name(self) -> str:
        return self.document.name

    def install(self, runner: Runner, replay: ReplayServer | None) -> None:
        """Put the faults in place before the run starts: the replay hook, the HTTP timings, the runner's
        deliveries and the AWS clients' event handlers."""
        if self.document.source:
            if replay is None:
                raise ValueError("source faults need the replay server (not --live)")
            self.source.replay = replay
            replay.add_hook(self.source)
        if self.document.socrata_page_size is not None:  # read by the extractor's settings at its import
            os.environ["SOCRATA_PAGE_SIZE"] = str(self.document.socrata_page_size)
        if runner.handler("ExtractorFunction") is not None:
            http = sys.modules["extractor.http"] if "extractor.http" in sys.modules else _import("extractor.http")
            tuning = self.document.http
            http.BACKOFF_FACTOR, http.BACKOFF_JITTER = tuning.backoff_factor, tuning.backoff_jitter
            http.READ_TIMEOUT = tuning.read_timeout
        self.delivery.install(runner)
        from datalake.aws import client  # the functions' shared clients (this process is their container)

        if self.document.record_writes:
            self.writes = S3Writes(runner.cloud.ref("LakeBucket"))
            self.writes.install(client("s3"))
        if self.document.aws:
            self.aws = AwsFaults(self.document.aws, runner.cloud.ref("LakeBucket"))
            self.aws.install(client("s3"))
            for logical in runner.cloud.functions:
                handler = runner.handler(logical)
                if handler is not None:
                    runner._handlers[logical] = crash_tolerant(handler, logical)

    def report(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source.report(),
            "delivery": self.delivery.report(),
            "aws": self.aws.report() if self.aws is not None else [],
            "writes": self.writes.report() if self.writes is not None else None,
        }

    def lines(self) -> list[str]:
        """What the run prints about its faults."""
        found = [
            f"{r['fault']}: {r['faulted']} of {r['matched']} matching requests faulted" for r in self.source.report()
        ]
        for queue, info in self.delivery.report()["duplicates"].items():
            found.append(f"duplicate delivery on {queue}: {info['sent']} extra copies sent ({info['copies']} in all)")
        found.extend(f"poison message put into {queue}" for queue in self.delivery.report()["poison"])
        if self.aws is not None:
            found.extend(f"{r['fault']}: {r['injected']} of {r['matched']} matching calls" for r in self.aws.report())
        return found


def _import(name: str) -> Any:
    import importlib

    return importlib.import_module(name)
