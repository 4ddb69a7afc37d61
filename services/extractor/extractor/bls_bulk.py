"""BLS bulk mirror: ``landing/bls_bulk/{survey}/{file}`` kept in sync with download.bls.gov.

One sync, in two phases:

**Fetch** (no write):
  1. read the directory listing (the User-Agent carries the contact email: BLS answers 403 without one);
  2. download every listed file into a spool, hashing it, and prove it whole (``extractor.proof``): its size and
     Last-Modified agree with the listing, and a data file ends with a newline on a complete line. A file that
     fails is retried with the request; on its last receive it is held (landed raw, the mirrored copy kept);
  3. for every mirrored file the listing no longer names, ask for it directly: only a 404 proves it gone (a listing
     can be incomplete), or its absence from two listings in a row.

**Apply** (under a lease on the survey, so two overlapping runs never interleave their writes):
  4. a fetch that started before the one the state last recorded (``fetched_at``) is superseded: it writes nothing;
  5. compare with the mirror's state; a file the state knows but the bucket lost is written again (``restored``);
  6. the plausibility guard: a data file that lost more rows than upstream ever drops is held (unless accepted);
  7. write new, changed and restored files, delete the files proven gone, write the manifest (parts = the written
     files with their version ids; ``changes`` = what happened to each), then the state, then the events.
An unchanged directory writes nothing and reports ``dataset.unchanged`` (or lands the current files again when the
staging files they produced are gone).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from datalake.contracts import ExtractRequest, FileChange, HeldLanding, Manifest, ManifestPart
from datalake.lake import LakeStore
from datalake.layout import bulk_mirror_key, bulk_mirror_prefix, held_key, landing_part_key, manifest_key
from datalake.lease import Lease
from datalake.state import StateStore, utc_stamp
from extractor.domain import bulk_file_role, mirror_digest, parse_bls_listing, plan_sync, sha256_hex
from extractor.errors import DatasetNotFound, PayloadTooLarge, SourceUnavailable
from extractor.http import Download, HttpClient
from extractor.landing import Lander, object_metadata, put_object
from extractor.proof import IncompleteSnapshot, bulk_file_problems, drop_accepted, now_utc, row_drop
from extractor.telemetry import telemetry

logger = Logger(child=True)


def bulk_pk(survey: str) -> str:
    return f"BULKFILE#{survey}"


def file_sk(name: str) -> str:
    return f"FILE#{name}"


@dataclass
class BulkFetch:
    """What one sync fetched, before anything is written."""

    request: ExtractRequest
    listing_url: str
    fetched_at: datetime
    listed: dict[str, Any]
    downloads: dict[str, Download]
    incomplete: dict[str, list[str]] = field(default_factory=dict)  # file -> why it is not proven whole
    gone: set[str] = field(default_factory=set)  # mirrored files a direct request answered 404
    unlisted: set[str] = field(default_factory=set)  # mirrored files missing from the listing, still served

    def close(self) -> None:
        for download in self.downloads.values():
            download.close()


def free_tmp_bytes() -> int:
    """The free space of the temporary folder downloads spool to (Lambda's ``/tmp``: its EphemeralStorage)."""
    return shutil.disk_usage(tempfile.gettempdir()).free


class BulkMirror:
    def __init__(
        self,
        http: HttpClient,
        base_url: str,
        lake: LakeStore,
        state: StateStore,
        lander: Lander,
        lease: Lease | None = None,
        free_tmp: Callable[[], int] = free_tmp_bytes,
    ) -> None:
        self.http = http
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.lake = lake
        self.state = state
        self.lander = lander
        self.lease = lease or Lease(state.table_name, lease_seconds=900, wait_seconds=60.0)
        self.free_tmp = free_tmp

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
        """What the mirror holds, ``name -> state``: the state table, plus objects it does not know about.

        A file the state knows whose object is gone is marked ``lost`` (the sync writes it again).
        """
        known = {item["name"]: item for item in self.state.query(bulk_pk(survey), "FILE#") if "name" in item}
        prefix = bulk_mirror_prefix(survey)
        present = set()
        for obj in self.lake.list(prefix):
            name = obj.key[len(prefix) :]
            if "/" in name:
                continue  # manifests and held snapshots live under ingest_date=.../
            present.add(name)
            if name in known:
                continue
            info = self.lake.head(obj.key)
            known[name] = {
                "name": name,
                "sha256": (info.metadata if info else {}).get("content-sha256"),
                "adopted": True,
            }
        for name, item in known.items():
            if name not in present:
                item["lost"] = True
        return known

    # -- one sync -----------------------------------------------------------------------------------------------
    def sync(self, request: ExtractRequest, keep_bad: bool = False) -> dict[str, Any]:
        """Bring the mirror of one survey in line with upstream.

        ``keep_bad`` (the request's last receive): a file that cannot be proven whole is held instead of failing
        the request again.

        Raises
        ------
        DatasetNotFound
            When BLS has no such survey directory (permanent).
        IncompleteSnapshot
            When a download disagrees with the listing (retried; held on the last receive).
        SourceUnavailable, BadPayload, TimeBudgetExceeded, LeaseBusy
            When the listing or a download fails, or another sync of the survey holds the lease: nothing was
            written or deleted.
        """
        fetched = self.fetch(request, keep_bad)
        try:
            with self.lease.hold(f"mirror#{request.dataset}"):
                return self.apply(fetched)
        finally:
            fetched.close()

    def fetch(self, request: ExtractRequest, keep_bad: bool = False) -> BulkFetch:
        """Phase one: the listing, every listed file, and the proofs. Nothing is written.

        Raises
        ------
        As ``sync``.
        """
        survey = request.dataset
        fetched_at = now_utc()
        listing_url = self.listing_url(survey)
        listing = self._get(listing_url, "listing")
        try:
            page = listing.read().decode("utf-8", errors="replace")
        finally:
            listing.close()
        listed = {f.name: f for f in parse_bls_listing(page, listing_url, survey)}
        self._check_room(survey, listed)
        fetched = BulkFetch(request, listing_url, fetched_at, listed, {})
        try:
            for name, entry in listed.items():
                download = fetched.downloads[name] = self._get(entry.url, "file")
                problems = bulk_file_problems(
                    name,
                    entry.size,
                    entry.last_modified,
                    download.size,
                    download.headers.get("Last-Modified"),
                    download.tail(),
                    download.first_line(),
                    bulk_file_role(survey, name) == "data",
                )
                if problems:
                    fetched.incomplete[name] = problems
            if fetched.incomplete and not keep_bad:
                reasons = [p for problems in fetched.incomplete.values() for p in problems]
                raise IncompleteSnapshot("; ".join(reasons), check="bulk.listing")
            for name in sorted(set(self.mirrored(survey)) - set(listed)):
                self._probe_unlisted(fetched, name)
        except BaseException:
            fetched.close()
            raise
        return fetched

    def _check_room(self, survey: str, listed: dict[str, Any]) -> None:
        """Every listed file is downloaded before any is written, so the survey must fit the temporary folder.

        Raises
        ------
        PayloadTooLarge
            When the listed sizes add up to more than the free space: a retry cannot help, and a download that ran
            out of space half way would fail every receive with no reason anyone could act on.
        """
        needed = sum(entry.size or 0 for entry in listed.values())
        free = self.free_tmp()
        if needed > free:
            raise PayloadTooLarge(
                f"the {survey} survey lists {needed / 1e6:,.0f} MB of files and the function has {free / 1e6:,.0f} MB"
                " free in /tmp: every file is downloaded before any is written. Raise the ExtractorFunction's"
                " EphemeralStorage in template.yaml (up to 10,240 MB)"
            )

    def _probe_unlisted(self, fetched: BulkFetch, name: str) -> None:
        """A mirrored file the listing omits: only a 404 for the file itself proves it gone."""
        url = urljoin(fetched.listing_url, name)
        download = self.http.fetch("GET", url)
        telemetry.count("ApiCalls", source="bls_bulk")
        download.close()
        if download.status == 404:
            fetched.gone.add(name)
        else:
            fetched.unlisted.add(name)
            logger.warning(
                "a mirrored file is missing from the listing but still served; kept",
                extra={"file": name, "status": download.status},
            )

    # -- phase two ----------------------------------------------------------------------------------------------
    def apply(self, fetched: BulkFetch) -> dict[str, Any]:
        """Phase two, under the survey's lease: write, delete, commit. See the module docstring."""
        request = fetched.request
        survey = request.dataset
        previous = self.lander.last_landing(request) or {}
        newer = previous.get("fetched_at")
        if newer and newer > utc_stamp(fetched.fetched_at):
            return self.lander.superseded(request, newer)
        mirrored = self.mirrored(survey)
        whole = {n: d for n, d in fetched.downloads.items() if n not in fetched.incomplete}
        upstream = {name: d.sha256 for name, d in whole.items()}
        plan = plan_sync(upstream, {n: None if m.get("lost") else m.get("sha256") for n, m in mirrored.items()})
        held = {n: "; ".join(p) for n, p in fetched.incomplete.items()}
        accepted: dict[str, str] = {}
        for name in plan.to_write:
            drop = self._implausible(survey, name, mirrored.get(name), whole[name])
            if drop:
                before = mirrored.get(name) or {}
                verdict = drop_accepted(request.params.accept_drop, request.run_id, before, whole[name].sha256)
                if verdict is None:
                    held[name] = drop
                else:
                    accepted[name] = f"{drop}; accepted: {verdict}"
        to_write = [n for n in plan.to_write if n not in held]
        # absent from the listing and not proven gone: kept, until a second listing in a row omits it too
        to_delete = [
            n
            for n in plan.deleted
            if n in fetched.gone or (n in fetched.unlisted and int(mirrored[n].get("listing_misses") or 0) >= 1)
        ]
        for name in sorted(set(plan.deleted) - set(to_delete)):
            if name in fetched.unlisted:
                self._count_miss(survey, name, mirrored[name])
        digest = mirror_digest(upstream)
        for name in (n for n in plan.unchanged if mirrored[n].get("adopted")):
            self._remember(survey, name, whole[name], fetched, None)  # known now; not uploaded again
        for name in (n for n in plan.unchanged if mirrored[n].get("listing_misses")):
            self._remember(survey, name, whole[name], fetched, mirrored[name].get("version_id"))
        held_key_written = self._hold(fetched, held, previous) if held or fetched.unlisted else None
        missing = self.lander.missing_staging(previous)
        if not to_write and not to_delete and not missing:
            if held_key_written:
                return {"outcome": "held", "source": "bls_bulk", "dataset": survey, "held_key": held_key_written}
            return self.lander.unchanged(request, digest, {"files": len(upstream)})
        return self._commit(fetched, plan, mirrored, to_write, to_delete, accepted, digest, missing)

    def _commit(
        self,
        fetched: BulkFetch,
        plan: Any,
        mirrored: dict[str, dict[str, Any]],
        to_write: list[str],
        to_delete: list[str],
        accepted: dict[str, str],
        digest: str,
        missing: list[str],
    ) -> dict[str, Any]:
        """Write, delete and commit. ``missing``: staging files of the mirror that are gone; the mirrored files that
        did not change are then listed in the manifest too (at their current versions), so they are staged again."""
        request = fetched.request
        survey = request.dataset
        parts, changes = [], []
        for name in to_write:
            download = fetched.downloads[name]
            key = bulk_mirror_key(survey, name)
            parts.append(self._put_file(survey, name, key, download, request.run_id))
            action = "added" if name in plan.added else ("restored" if mirrored[name].get("lost") else "changed")
            if action == "restored":
                logger.warning("a mirrored file was missing from the bucket; written again", extra={"file": name})
            changes.append(
                FileChange(
                    name=name,
                    action=action,
                    key=key,
                    bytes=download.size,
                    sha256=download.sha256,
                    last_modified=download.headers.get("Last-Modified") or fetched.listed[name].last_modified,
                )
            )
            telemetry.count("BytesLanded", download.size, MetricUnit.Bytes, source="bls_bulk")
        for name in to_delete:
            key = bulk_mirror_key(survey, name)
            self.lake.delete(key)
            changes.append(FileChange(name=name, action="deleted", key=key, sha256=mirrored[name].get("sha256")))
        restored = [
            f"mirrored file {c.name} was missing from the bucket: written again"
            for c in changes
            if c.action == "restored"
        ]
        restaged = []
        if missing:
            restaged = [p for p in self._current_parts(fetched, mirrored) if p.name not in set(to_write)]
            restored += [
                f"staging file {k} was missing: the mirrored files are landed again to stage it" for k in missing
            ]
            logger.warning(
                "staging files missing; the mirrored files are landed again", extra={"missing": missing[:20]}
            )
        manifest = self._manifest(fetched, digest, parts + restaged, changes, list(accepted.values()))
        key = manifest_key(request.source, survey, request.requested_at, digest)
        self.lander.commit(manifest, key)
        for name, part in zip(to_write, parts, strict=True):
            self._remember(survey, name, fetched.downloads[name], fetched, part.version_id)
        for name in to_delete:
            self.state.delete(bulk_pk(survey), file_sk(name))
        telemetry.count("FilesChanged", len(changes), source="bls_bulk")
        counts = {action: sum(c.action == action for c in changes) for action in ("added", "changed", "restored")}
        counts.update(deleted=len(to_delete), unchanged=len(plan.unchanged), records=manifest.record_count)
        logger.info("bulk mirror synced", extra={"survey": survey, **counts})
        return self.lander.record_landing(manifest, key, counts, restored=restored)

    def _current_parts(self, fetched: BulkFetch, mirrored: dict[str, dict[str, Any]]) -> list[ManifestPart]:
        """The mirrored files as they are (their recorded versions), as manifest parts."""
        survey = fetched.request.dataset
        return [
            self._part(
                survey,
                name,
                item.get("key") or bulk_mirror_key(survey, name),
                item["sha256"],
                int(item.get("size") or 0),
                int(item.get("records") or 0),
                item.get("version_id"),
            )
            for name, item in sorted(mirrored.items())
            if name in fetched.listed and item.get("sha256") and not item.get("lost")
        ]

    def _manifest(
        self, fetched: BulkFetch, digest: str, parts: list[ManifestPart], changes: list[FileChange], warnings: list[str]
    ) -> Manifest:
        request = fetched.request
        return Manifest(
            run_id=request.run_id,
            source=request.source,
            dataset=request.dataset,
            trigger=request.trigger,
            created_at=datetime.now(UTC),
            source_url=fetched.listing_url,
            content_sha256=digest,
            parts=parts,
            changes=changes,
            warnings=warnings,
            params=request.params,
            fetched_at=fetched.fetched_at,
            proof={
                "files_listed": len(fetched.listed),
                "files_proven_whole": len(fetched.listed) - len(fetched.incomplete),
                "files_proven_gone": len(fetched.gone),
            },
        )

    def _put_file(self, survey: str, name: str, key: str, download: Download, run_id: str) -> ManifestPart:
        """Write a downloaded file as received; the manifest part that pins the version written."""
        records = max(0, download.newlines - 1)
        written = put_object(
            self.lake,
            key,
            download.rewind(),
            object_metadata(run_id, download.url, download.sha256, records),
            "text/plain",
        )
        return self._part(survey, name, key, download.sha256, download.size, records, written.version_id)

    @staticmethod
    def _part(
        survey: str, name: str, key: str, sha256: str, size: int, records: int, version_id: str | None
    ) -> ManifestPart:
        return ManifestPart(
            key=key,
            sha256=sha256,
            bytes=size,
            records=records,
            version_id=version_id,
            role=bulk_file_role(survey, name),
            name=name,
        )

    # -- the guard and holds ------------------------------------------------------------------------------------
    @staticmethod
    def _implausible(survey: str, name: str, before: dict[str, Any] | None, download: Download) -> str | None:
        if before is None or bulk_file_role(survey, name) != "data":
            return None
        previous = before.get("records")
        return row_drop(
            f"bls_bulk/{survey} {name}", previous if isinstance(previous, int) else None, max(0, download.newlines - 1)
        )

    def _hold(self, fetched: BulkFetch, held: dict[str, str], previous: dict[str, Any]) -> str:
        """Land the held files raw (not in the mirror), record them, and tell people; the mirrored copies stay.

        Files the listing omits but upstream still serves are held too (nothing to land: they were not downloaded).
        """
        request = fetched.request
        survey = request.dataset
        kept_unlisted = sorted(fetched.unlisted)
        digest = sha256_hex(
            "".join(f"{n}\t{fetched.downloads[n].sha256}\n" for n in sorted(held)).encode()
            + "".join(f"{n}\tunlisted\n" for n in kept_unlisted).encode()
        )
        parts = []
        for index, name in enumerate(sorted(held)):
            download = fetched.downloads[name]
            key = landing_part_key(request.source, survey, request.requested_at, digest, index, f"-{name}")
            parts.append(self._put_file(survey, name, key, download, request.run_id))
            self._remember_hold(survey, name, download.sha256, request.run_id)
        acceptable = not (set(held) & set(fetched.incomplete)) and not kept_unlisted
        reasons = [f"{n}: {r}" for n, r in sorted(held.items())]
        if kept_unlisted:
            reasons.append(
                f"the listing omits {len(kept_unlisted)} mirrored file(s) that are still served: "
                f"{', '.join(kept_unlisted)} (kept; deleted only on a 404 or when two listings in a row omit them)"
            )
        check = "bulk.listing" if set(held) & set(fetched.incomplete) or kept_unlisted else "plausibility"
        record = HeldLanding(
            run_id=request.run_id,
            source=request.source,
            dataset=survey,
            created_at=datetime.now(UTC),
            fetched_at=fetched.fetched_at,
            source_url=fetched.listing_url,
            content_sha256=digest,
            reason=" | ".join(reasons),
            check=check,
            acceptable=acceptable,
            parts=parts,
            kept={n: bulk_mirror_key(survey, n) for n in sorted({*held, *kept_unlisted})},
        )
        key = held_key(request.source, survey, request.requested_at, digest)
        self.lander.publish_held(record, key, f"the mirrored copies of {', '.join(sorted({*held, *kept_unlisted}))}")
        return key

    def _remember_hold(self, survey: str, name: str, sha256: str, run_id: str) -> None:
        before = self.state.get(bulk_pk(survey), file_sk(name)) or {}
        same = before.get("held_sha256") == sha256
        if same and before.get("held_run_id") == run_id:
            return
        runs = int(before.get("held_runs") or 0) + 1 if same else 1
        self.state.update(
            bulk_pk(survey),
            file_sk(name),
            set_values={"name": name, "held_sha256": sha256, "held_runs": runs, "held_run_id": run_id},
        )

    def _count_miss(self, survey: str, name: str, before: dict[str, Any]) -> None:
        self.state.update(
            bulk_pk(survey),
            file_sk(name),
            set_values={"name": name, "listing_misses": int(before.get("listing_misses") or 0) + 1},
        )

    def _remember(self, survey: str, name: str, download: Download, fetched: BulkFetch, version_id: str | None) -> None:
        listed_modified = fetched.listed[name].last_modified
        self.state.put(
            bulk_pk(survey),
            file_sk(name),
            {
                "name": name,
                "sha256": download.sha256,
                "size": download.size,
                "records": max(0, download.newlines - 1),
                "last_modified": download.headers.get("Last-Modified") or listed_modified,
                "listed_modified": listed_modified,
                "version_id": version_id,
                "key": bulk_mirror_key(survey, name),
                "run_id": fetched.request.run_id,
                "fetched_at": utc_stamp(fetched.fetched_at),
            },
        )
