"""Lineage: which landing objects and runs a mart came from, as a document per mart and as a graph.

Pure. A mart's lineage document lists, for each input, the staging files read and, from the rows the mart used
(after its input selection), the distinct ``_source`` landing objects with their ``_run_id`` values; for a mart
input, the upstream mart's published object and content hash. The graph joins the documents of every published
mart: landing object -> staging table -> mart -> mart, drawable as Mermaid or Graphviz DOT.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

LINEAGE_COLUMNS = ("_source", "_run_id")
STAGING_FILE_COLUMN = "_staging_file"


def landing_sources(table: pa.Table) -> list[dict[str, Any]]:
    """The landing objects behind a table's rows: ``[{object, run_ids, rows}]``, sorted by object."""
    if table.num_rows == 0 or not all(c in table.column_names for c in LINEAGE_COLUMNS):
        return []
    grouped = table.group_by(list(LINEAGE_COLUMNS), use_threads=False).aggregate([([], "count_all")])
    by_object: dict[str, dict[str, Any]] = {}
    for row in grouped.to_pylist():
        entry = by_object.setdefault(str(row["_source"]), {"object": str(row["_source"]), "run_ids": set(), "rows": 0})
        if row["_run_id"] is not None:
            entry["run_ids"].add(row["_run_id"])
        entry["rows"] += row["count_all"]
    return [{**e, "run_ids": sorted(e["run_ids"])} for _, e in sorted(by_object.items())]


def staging_files_used(table: pa.Table, files: Mapping[str, str]) -> list[dict[str, str]]:
    """The staging files (key and ETag) that contributed at least one of the table's rows."""
    if STAGING_FILE_COLUMN not in table.column_names:
        return [{"key": k, "etag": e} for k, e in sorted(files.items())]
    used = set(pc.unique(table[STAGING_FILE_COLUMN]).to_pylist())
    return [{"key": k, "etag": e} for k, e in sorted(files.items()) if k in used]


def staging_input(table_name: str, selection: str, rows: pa.Table, files: Mapping[str, str]) -> dict[str, Any]:
    return {
        "layer": "staging",
        "table": table_name,
        "selection": selection,
        "rows": rows.num_rows,
        "files": staging_files_used(rows, files),
        "landing": landing_sources(rows),
    }


def mart_input(name: str, key: str, content_sha256: str | None, rows: int | None) -> dict[str, Any]:
    return {"layer": "mart", "mart": name, "key": key, "content_sha256": content_sha256, "rows": rows}


def mart_document(
    *,
    name: str,
    kind: str,
    key: str,
    rows: int,
    content_sha256: str,
    version_id: str | None,
    built_at: str,
    run_ids: Iterable[str],
    input_fingerprint: str,
    inputs: list[dict[str, Any]],
    checks: list[dict[str, Any]],
) -> dict[str, Any]:
    """The lineage document written beside a mart at each publication."""
    return {
        "mart": name,
        "kind": kind,
        "key": key,
        "rows": rows,
        "content_sha256": content_sha256,
        "version_id": version_id,
        "built_at": built_at,
        "triggered_by_runs": sorted(set(run_ids)),
        "input_fingerprint": input_fingerprint,
        "inputs": inputs,
        "checks": checks,
    }


def landing_objects(document: Mapping[str, Any]) -> list[str]:
    """Every landing object a mart's document names, across its staging inputs."""
    return sorted({src["object"] for i in document.get("inputs", []) for src in i.get("landing", [])})


# ----------------------------------------------------------------------------------------------------------------
# The graph
# ----------------------------------------------------------------------------------------------------------------


def build_graph(documents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Nodes (landing objects, staging tables, marts) and edges from the marts' lineage documents."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in sorted(documents, key=lambda x: x["mart"]):
        mart_id = f"mart:{doc['mart']}"
        nodes[mart_id] = {"id": mart_id, "type": "mart", "label": doc["mart"], "kind": doc["kind"], "rows": doc["rows"]}
        for source in doc["inputs"]:
            if source["layer"] == "mart":
                upstream = f"mart:{source['mart']}"
                nodes.setdefault(upstream, {"id": upstream, "type": "mart", "label": source["mart"]})
                edges[(upstream, mart_id)] = {"from": upstream, "to": mart_id, "label": ""}
                continue
            table_id = f"staging:{source['table']}"
            nodes.setdefault(table_id, {"id": table_id, "type": "staging", "label": source["table"]})
            label = "" if source.get("selection") in (None, "all rows") else source["selection"]
            edges[(table_id, mart_id)] = {"from": table_id, "to": mart_id, "label": label}
            for landing in source.get("landing", []):
                landing_id = f"landing:{landing['object']}"
                nodes.setdefault(landing_id, {"id": landing_id, "type": "landing", "label": landing["object"]})
                runs = edges.get((landing_id, table_id), {}).get("run_ids", [])
                edges[(landing_id, table_id)] = {
                    "from": landing_id,
                    "to": table_id,
                    "run_ids": sorted(set(runs) | set(landing["run_ids"])),
                    "label": ", ".join(sorted(set(runs) | set(landing["run_ids"]))),
                }
    return {
        "nodes": sorted(nodes.values(), key=lambda n: n["id"]),
        "edges": sorted(edges.values(), key=lambda e: (e["from"], e["to"])),
    }


def _node_ref(node_id: str) -> str:
    return "n" + hashlib.sha256(node_id.encode()).hexdigest()[:10]


def _short(label: str, limit: int = 70) -> str:
    return label if len(label) <= limit else "..." + label[-(limit - 3) :]


def _mermaid_text(text: str) -> str:
    return text.replace('"', "'")


def to_mermaid(graph: Mapping[str, Any]) -> str:
    """A Mermaid flowchart (left to right): landing objects, staging tables, marts."""
    shapes = {"landing": ('["', '"]'), "staging": ('[("', '")]'), "mart": ('[["', '"]]')}
    lines = ["flowchart LR"]
    for node in graph["nodes"]:
        opening, closing = shapes[node["type"]]
        lines.append(f"  {_node_ref(node['id'])}{opening}{_mermaid_text(_short(node['label']))}{closing}")
    for edge in graph["edges"]:
        label = _mermaid_text(edge.get("label") or "")
        arrow = f' -- "{_short(label, 60)}" --> ' if label else " --> "
        lines.append(f"  {_node_ref(edge['from'])}{arrow}{_node_ref(edge['to'])}")
    for kind, style in (("landing", "fill:#eef"), ("staging", "fill:#efe"), ("mart", "fill:#fee")):
        members = [_node_ref(n["id"]) for n in graph["nodes"] if n["type"] == kind]
        if members:
            lines.append(f"  classDef {kind} {style}")
            lines.append(f"  class {','.join(members)} {kind}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(graph: Mapping[str, Any]) -> str:
    """A Graphviz DOT digraph of the same graph."""
    shapes = {"landing": "note", "staging": "cylinder", "mart": "box3d"}
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for node in graph["nodes"]:
        lines.append(f'  "{_dot_text(node["id"])}" [label="{_dot_text(node["label"])}", shape={shapes[node["type"]]}];')
    for edge in graph["edges"]:
        label = f' [label="{_dot_text(edge["label"])}"]' if edge.get("label") else ""
        lines.append(f'  "{_dot_text(edge["from"])}" -> "{_dot_text(edge["to"])}"{label};')
    lines.append("}")
    return "\n".join(lines) + "\n"
