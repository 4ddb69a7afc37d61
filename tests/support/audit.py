"""Where did everything of a local run end up? ``audit_run`` reads the lake folder a local run leaves and says where
every catalog entry of a run ended (landed, unchanged, held, dead-lettered with its reason, or deferred to the next
run) and where every landed manifest ended (staged, quarantined, or in the TransformDLQ). Anything else is lost."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote_plus

LOCAL = "_local"
Ending = Literal["landed", "held", "unchanged", "dlq", "deferred", "lost"]
ManifestEnding = Literal["staged", "quarantined", "transform_dlq", "lost"]


@dataclass(frozen=True)
class EntryOutcome:
    ref: str  # source/dataset
    ending: Ending
    reason: str | None = None  # for the DLQ: the failure_reason attribute, or the last reason the logs give
    reason_from: Literal["failure_reason", "logs", "none"] | None = None
    manifests: tuple[str, ...] = ()


@dataclass(frozen=True)
class ManifestOutcome:
    key: str
    ref: str
    ending: ManifestEnding
    evidence: str


@dataclass
class RunAudit:
    run_id: str
    entries: dict[str, EntryOutcome]
    manifests: dict[str, ManifestOutcome]
    dead_letters: dict[str, int]

    def count(self, ending: str) -> int:
        return sum(1 for e in self.entries.values() if e.ending == ending)

    def manifest_count(self, ending: str) -> int:
        return sum(1 for m in self.manifests.values() if m.ending == ending)

    @property
    def lost(self) -> list[str]:
        """Entries and manifests that ended nowhere, and dead letters without any reason."""
        entries, manifests = self.entries.values(), self.manifests.values()
        gone = [f"{e.ref}: no landing, no dead letter, nothing deferred" for e in entries if e.ending == "lost"]
        gone += [f"{e.ref}: dead-lettered without a reason" for e in entries if e.ending == "dlq" and not e.reason]
        gone += [f"{m.key}: landed, but neither staged nor quarantined" for m in manifests if m.ending == "lost"]
        return gone

    def outcome_line(self) -> str:
        """landed / staged / quarantined / DLQ counts (deferred and unchanged when there are any), for a table."""
        counts = self.summary()
        labels = (("landed", "landed"), ("staged", "staged"), ("quarantined", "quarantined"), ("dlq", "DLQ"))
        shown = [f"{label} {counts[name]}" for name, label in labels]
        if counts["partial"]:  # staged, with a file or rows of it quarantined
            shown[1] += f" ({counts['partial']} with rejects quarantined)"
        shown += [f"{name} {counts[name]}" for name in ("held", "deferred", "unchanged") if counts[name]]
        return ", ".join(shown)

    def summary(self) -> dict[str, int]:
        return {
            "entries": len(self.entries),
            "landed": self.count("landed"),
            "unchanged": self.count("unchanged"),
            "held": self.count("held"),
            "staged": self.manifest_count("staged"),
            "partial": sum(1 for m in self.manifests.values() if m.ending == "staged" and "rejects" in m.evidence),
            "quarantined": self.manifest_count("quarantined"),
            "dlq": self.count("dlq") + self.manifest_count("transform_dlq"),
            "deferred": self.count("deferred"),
            "lost": len(self.lost),
        }


def _state_items(lake_dir: Path) -> list[dict[str, Any]]:
    from datalake.state import from_item

    path = lake_dir / LOCAL / "state-table.jsonl"
    if not path.exists():
        return []
    return [from_item(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def _kept_messages(lake_dir: Path, file_name: str) -> list[dict[str, Any]]:
    path = lake_dir / LOCAL / file_name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _body(message: dict[str, Any]) -> Any:
    try:
        return json.loads(message["body"])
    except ValueError:
        return None


def _ref_of_request(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("source"), str) and isinstance(body.get("dataset"), str):
        return f"{body['source']}/{body['dataset']}"
    return None


def _log_reasons(lake_dir: Path, run_id: str) -> dict[str, str]:
    """The last failure reason the extractor's logs give per source/dataset of a run (in log file order, then line
    order): the reason of an ExtractRequest. Other functions log under the dataset's keys too (the modeler's "mart
    skipped" warnings while it models that dataset's staging), and those are not why a request failed."""
    reasons: dict[str, str] = {}
    for path in sorted((lake_dir / LOCAL / "logs").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if not line.startswith("{") or run_id not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            reason = entry.get("reason") or entry.get("error")
            if entry.get("service") != "extractor" or entry.get("level") not in ("WARNING", "ERROR"):
                continue
            if reason and entry.get("source") and entry.get("dataset"):
                reasons[f"{entry['source']}/{entry['dataset']}"] = str(reason)
    return reasons


def _staged_sources(lake_dir: Path) -> set[str]:
    """Every ``_source`` (landing object, ``key?versionId=`` for a mirrored file) that has rows in staging."""
    import pyarrow.parquet as pq

    found: set[str] = set()
    for path in (lake_dir / "staging").rglob("*.parquet"):
        table = pq.read_table(path, columns=["_source"], use_threads=False, partitioning=None)
        found.update(s for s in table.column("_source").unique().to_pylist() if s)
    return found


def _manifest_stem(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".manifest.json")


def _of_run(message: dict[str, Any], queue: str, run_id: str) -> str | None:
    """The source/dataset of a kept ExtractRequest of this run, or None."""
    body = _body(message)
    if message["queue"] != queue or not isinstance(body, dict) or body.get("run_id") != run_id:
        return None
    return _ref_of_request(body)


class _LakeReader:
    """What a lake folder says about one run: its ledger, manifests, kept messages, logs and staging."""

    def __init__(self, lake_dir: Path, run_id: str) -> None:
        self.lake_dir = Path(lake_dir)
        self.run_id = run_id
        items = _state_items(self.lake_dir)
        self.events = [json.loads(i["event"]) for i in items if i.get("pk") == f"RUN#{run_id}" and "event" in i]
        self.state = {i["pk"]: i for i in items if i.get("sk") == "STATE" and str(i.get("pk")).startswith("DATASET#")}
        self.dead = _kept_messages(self.lake_dir, "dead-letters.jsonl")
        self.pending = _kept_messages(self.lake_dir, "pending.jsonl")
        self.manifests: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for path in sorted((self.lake_dir / "landing").rglob("*.manifest.json")):
            document = json.loads(path.read_text())
            if document.get("run_id") == run_id:
                ref = f"{document['source']}/{document['dataset']}"
                self.manifests.setdefault(ref, []).append((path.relative_to(self.lake_dir).as_posix(), document))

    def expected(self) -> list[str]:
        started = [e for e in self.events if e.get("event_type") == "run.started"]
        if not started:
            raise LookupError(f"no run.started for {self.run_id} in {self.lake_dir / LOCAL / 'state-table.jsonl'}")
        return list(dict.fromkeys(started[0]["datasets"]))

    def entry(
        self, ref: str, dead: dict[str, dict[str, Any]], deferred: set[str], log_reasons: dict[str, str]
    ) -> EntryOutcome:
        landed = tuple(k for k, _ in self.manifests.get(ref, []))
        unchanged = {f"{e['source']}/{e['dataset']}" for e in self.events if e.get("event_type") == "dataset.unchanged"}
        if ref in dead:
            return self._dead(ref, dead[ref], log_reasons, landed)
        if landed:
            return EntryOutcome(ref, "landed", manifests=landed)
        held = [e for e in self.events if e.get("event_type") == "dataset.held" and ref == _ref_of_request(e)]
        if held:  # landed raw and held: the previous snapshot stays current, and people were told why
            return EntryOutcome(ref, "held", held[-1].get("reason"), "failure_reason")
        if ref in unchanged:
            return EntryOutcome(ref, "unchanged")
        return EntryOutcome(ref, "deferred" if ref in deferred else "lost")

    @staticmethod
    def _dead(ref: str, message: dict[str, Any], log_reasons: dict[str, str], landed: tuple[str, ...]) -> EntryOutcome:
        attribute = (message.get("message_attributes") or {}).get("failure_reason", {})
        if attribute.get("StringValue"):
            return EntryOutcome(ref, "dlq", attribute["StringValue"], "failure_reason", landed)
        if ref in log_reasons:
            return EntryOutcome(ref, "dlq", log_reasons[ref], "logs", landed)
        return EntryOutcome(ref, "dlq", None, "none", landed)

    def manifest(self, ref: str, key: str, document: dict[str, Any], staged_sources: set[str]) -> ManifestOutcome:
        """Where one landed manifest ended: its quarantine folder, the transformer's record of staging it, rows of
        its own parts in staging, or the TransformDLQ (whose bodies carry the key URL-encoded, as S3 sends it)."""
        source, _, dataset = ref.partition("/")
        quarantine = self.lake_dir / "quarantine" / source / dataset / _manifest_stem(key)
        own = f"landing/{source}/{dataset}/"
        parts = {p["key"] for p in document["parts"] if p["key"].startswith(own)} | {
            f"{p['key']}?versionId={p['version_id']}" for p in document["parts"] if p.get("version_id")
        }
        staged_events = {e.get("manifest_key") for e in self.events if e.get("event_type") == "dataset.staged"}
        recorded = self.state.get(f"DATASET#{source}#{dataset}", {}).get("staged_manifest_key") == key
        staged = recorded or key in staged_events or bool(parts & staged_sources)
        if quarantine.is_dir() and any(quarantine.iterdir()):
            if staged:  # rows or one bulk file rejected, the rest of the landing staged
                return ManifestOutcome(key, ref, "staged", f"staged; rejects in {quarantine.name}/")
            return ManifestOutcome(key, ref, "quarantined", f"{quarantine.relative_to(self.lake_dir)}/")
        if staged:
            return ManifestOutcome(key, ref, "staged", "recorded staged" if recorded else "rows in staging")
        if any(key in unquote_plus(m["body"]) for m in self.dead if m["queue"] == "TransformDLQ"):
            return ManifestOutcome(key, ref, "transform_dlq", "TransformDLQ")
        return ManifestOutcome(key, ref, "lost", "nowhere")


def dead_letters(lake_dir: Path) -> list[tuple[str, str]]:
    """``(DLQ, source/dataset)`` of every message a lake's DLQs keep (the body's start when it is no request)."""
    found = []
    for message in _kept_messages(Path(lake_dir), "dead-letters.jsonl"):
        found.append((message["queue"], _ref_of_request(_body(message)) or message["body"][:80]))
    return found


def audit_run(lake_dir: Path, run_id: str) -> RunAudit:
    """Where every catalog entry of a run, and every manifest it landed, ended up (see the module docstring).

    Raises
    ------
    LookupError
        When the lake's ledger has no ``run.started`` for the run: without it, nobody knows what was expected.
    """
    lake = _LakeReader(lake_dir, run_id)
    dead = {ref: m for m in lake.dead if (ref := _of_run(m, "ExtractDLQ", run_id))}
    deferred = {ref for m in lake.pending if (ref := _of_run(m, "ExtractQueue", run_id))}
    log_reasons = _log_reasons(lake.lake_dir, run_id)
    entries = {ref: lake.entry(ref, dead, deferred, log_reasons) for ref in lake.expected()}
    staged_sources = _staged_sources(lake.lake_dir)
    manifests = {
        key: lake.manifest(ref, key, document, staged_sources)
        for ref, landed in lake.manifests.items()
        for key, document in landed
    }
    return RunAudit(run_id, entries, manifests, dict(Counter(m["queue"] for m in lake.dead)))
