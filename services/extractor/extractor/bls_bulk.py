"""BLS bulk mirror: ``landing/bls_bulk/{survey}/{file}`` kept in sync with download.bls.gov.

One sync:
  1. read the directory listing (the User-Agent carries the contact email: BLS answers 403 without one);
  2. download every listed file into a spool, hashing it. The decision is made on content, not on the listing's
     dates: Last-Modified moves without content changes, and in a replay cloned from git every mtime is the same;
  3. compare with the mirror's state (``BULKFILE#{survey}`` / ``FILE#{name}``, and the objects themselves for
     files the state does not know);
  4. only when every download succeeded: write new and changed files, delete removed ones, write the manifest
     (parts = the written files with their version ids; ``changes`` = added/changed/deleted), then the state.
A listing or download failure raises before anything is written or deleted; an unchanged directory writes
nothing and reports ``dataset.unchanged``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from datalake.contracts import ExtractRequest, FileChange, Manifest, ManifestPart
from datalake.lake import LakeStore
from datalake.layout import bulk_mirror_key, bulk_mirror_prefix, manifest_key
from datalake.state import StateStore
from extractor.domain import bulk_file_role, mirror_digest, parse_bls_listing, plan_sync
from extractor.errors import DatasetNotFound, SourceUnavailable
from extractor.http import Download, HttpClient
from extractor.landing import Lander, object_metadata, put_object
from extractor.telemetry import telemetry

logger = Logger(child=True)


def bulk_pk(survey: str) -> str:
    return f"BULKFILE#{survey}"


def file_sk(name: str) -> str:
    return f"FILE#{name}"


class BulkMirror:
    def __init__(self, http: HttpClient, base_url: str, lake: LakeStore, state: StateStore, lander: Lander) -> None:
        self.http = http
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.lake = lake
        self.state = state
        self.lander = lander

    def listing_url(self, survey: str) -> str:
        return urljoin(self.base_url, f"{survey}/")

    def _get(self, url: str, what: str) -> Download:
        download = self.http.fetch("GET", url)
        telemetry.count("ApiCalls", source="bls_bulk")
        if download.retries:
            telemetry.count("HttpRetries", download.retries, source="bls_bulk")
        if download.ok:
            return download
        download.close()
        if download.status == 404 and what == "listing":
            raise DatasetNotFound(f"BLS has no bulk directory at {url} (404)")
        if download.status == 403:
            raise SourceUnavailable(f"BLS refused the {what} {url} (403): the User-Agent must carry a contact email")
        raise SourceUnavailable(f"BLS answered HTTP {download.status} for the {what} {url}")

    def mirrored(self, survey: str) -> dict[str, dict[str, Any]]:
        """What the mirror holds, ``name -> state``: the state table, plus objects it does not know about."""
        known = {item["name"]: item for item in self.state.query(bulk_pk(survey), "FILE#") if "name" in item}
        prefix = bulk_mirror_prefix(survey)
        for obj in self.lake.list(prefix):
            name = obj.key[len(prefix) :]
            if "/" in name or name in known:
                continue  # manifests live under ingest_date=.../
            info = self.lake.head(obj.key)
            known[name] = {
                "name": name,
                "sha256": (info.metadata if info else {}).get("content-sha256"),
                "adopted": True,
            }
        return known

    def sync(self, request: ExtractRequest) -> dict[str, Any]:
        """Bring the mirror of one survey in line with upstream.

        Raises
        ------
        DatasetNotFound
            When BLS has no such survey directory (permanent).
        SourceUnavailable, BadPayload, TimeBudgetExceeded
            When the listing or a download fails: nothing was written or deleted.
        """
        survey = request.dataset
        listing_url = self.listing_url(survey)
        listing = self._get(listing_url, "listing")
        try:
            page = listing.read().decode("utf-8", errors="replace")
        finally:
            listing.close()
        listed = parse_bls_listing(page, listing_url, survey)
        downloads: dict[str, Download] = {}
        try:
            for entry in listed:
                downloads[entry.name] = self._get(entry.url, "file")
            return self._apply(request, listing_url, {f.name: f for f in listed}, downloads)
        finally:
            for download in downloads.values():
                download.close()

    def _apply(
        self, request: ExtractRequest, listing_url: str, listed: dict[str, Any], downloads: dict[str, Download]
    ) -> dict[str, Any]:
        survey = request.dataset
        upstream = {name: d.sha256 for name, d in downloads.items()}
        mirrored = self.mirrored(survey)
        plan = plan_sync(upstream, {n: m.get("sha256") for n, m in mirrored.items()})
        digest = mirror_digest(upstream)
        adopted = [n for n in plan.unchanged if mirrored[n].get("adopted")]
        for name in adopted:  # present in the bucket, unknown to the state: remember it, do not re-upload
            self._remember(survey, name, downloads[name], listed[name].last_modified, None, request.run_id)
        if plan.is_empty:
            return self.lander.unchanged(request, digest, {"files": len(upstream)})
        moment = request.requested_at
        parts, changes = [], []
        for name in plan.to_write:
            download = downloads[name]
            key = bulk_mirror_key(survey, name)
            records = max(0, download.newlines - 1)
            written = put_object(
                self.lake,
                key,
                download.rewind(),
                object_metadata(request.run_id, download.url, download.sha256, records),
                "text/plain",
            )
            parts.append(
                ManifestPart(
                    key=key,
                    sha256=download.sha256,
                    bytes=download.size,
                    records=records,
                    version_id=written.version_id,
                    role=bulk_file_role(survey, name),
                    name=name,
                )
            )
            changes.append(
                FileChange(
                    name=name,
                    action="added" if name in plan.added else "changed",
                    key=key,
                    bytes=download.size,
                    sha256=download.sha256,
                    last_modified=download.headers.get("Last-Modified") or listed[name].last_modified,
                )
            )
            telemetry.count("BytesLanded", download.size, MetricUnit.Bytes, source="bls_bulk")
        for name in plan.deleted:
            key = bulk_mirror_key(survey, name)
            self.lake.delete(key)
            changes.append(FileChange(name=name, action="deleted", key=key, sha256=mirrored[name].get("sha256")))
        manifest = Manifest(
            run_id=request.run_id,
            source=request.source,
            dataset=survey,
            trigger=request.trigger,
            created_at=datetime.now(UTC),
            source_url=listing_url,
            content_sha256=digest,
            parts=parts,
            changes=changes,
            params=request.params,
        )
        key = manifest_key(request.source, survey, moment, digest)
        self.lander.commit(manifest, key)
        for name, part in zip(plan.to_write, parts, strict=True):
            self._remember(survey, name, downloads[name], listed[name].last_modified, part.version_id, request.run_id)
        for name in plan.deleted:
            self.state.delete(bulk_pk(survey), file_sk(name))
        telemetry.count("FilesChanged", len(changes), source="bls_bulk")
        logger.info(
            "bulk mirror synced",
            extra={
                "survey": survey,
                "added": plan.added,
                "changed": plan.changed,
                "deleted": plan.deleted,
                "unchanged": len(plan.unchanged),
            },
        )
        counts = {
            "added": len(plan.added),
            "changed": len(plan.changed),
            "deleted": len(plan.deleted),
            "unchanged": len(plan.unchanged),
            "records": manifest.record_count,
        }
        return self.lander.record_landing(manifest, key, counts)

    def _remember(
        self,
        survey: str,
        name: str,
        download: Download,
        listed_modified: str | None,
        version_id: str | None,
        run_id: str,
    ) -> None:
        self.state.put(
            bulk_pk(survey),
            file_sk(name),
            {
                "name": name,
                "sha256": download.sha256,
                "size": download.size,
                "last_modified": download.headers.get("Last-Modified") or listed_modified,
                "listed_modified": listed_modified,
                "version_id": version_id,
                "key": bulk_mirror_key(survey, name),
                "run_id": run_id,
            },
        )
