"""The modeler on moto's server with the template's resources: PipelineTopic -> ModelQueue (filtered) -> the real
handler through the local runner; Glue tables and Athena queries from the template; then the local lake folder,
the report printout, the notebook executed top to bottom, and ``make report``'s charts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from datalake.contracts import DatasetExtracted
from datalake.events import publish_event
from datalake.settings import ModelerSettings, load_settings
from localrun.lakesync import save_lake
from localrun.runner import Runner
from localrun.template import ROOT
from modeler.registry import MARTS
from tests.unit.modeler.staging_builder import RUN_ID, StagingLake, staged_event

pytestmark = pytest.mark.integration

NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"


@pytest.fixture
def modeler_run(local_cloud, tmp_path):
    """Staging of the real 2026-08 release, population, SIAD and the Catalunya sources in the local bucket; three
    dataset.staged events and one dataset.extracted published on the PipelineTopic; the ModelQueue delivered to the
    real handler."""
    from modeler import handler
    from modeler.invocations import compose

    env = local_cloud.function_environment("ModelerFunction")
    settings = load_settings(ModelerSettings, {**env, "AWS_REGION": "us-east-1"})
    bucket = local_cloud.ref("LakeBucket")
    StagingLake(local_cloud.client("s3"), bucket).stage_all()
    topic, sns = local_cloud.ref("PipelineTopic"), local_cloud.client("sns")
    for event in (
        staged_event("bls_bulk", "pr", {"bls_observation": 38412, "bls_series": 282}),
        staged_event("datausa", "population", {"population": 10}),
        staged_event("socrata", "9uvn-hv6j", {"socrata_9uvn_hv6j": 134}),
        DatasetExtracted(run_id=RUN_ID, source="datausa", dataset="population", manifest_key="landing/x.manifest.json"),
    ):
        publish_event(event, topic, sns)

    runner = Runner(local_cloud)
    runner._handlers.update(
        {
            "SchedulerFunction": None,
            "ExtractorFunction": None,
            "TransformerFunction": None,
            "NotifierFunction": None,
            "ModelerFunction": handler.lambda_handler,
        }
    )
    with handler.ports.use(compose(settings)):  # the ports of the local cloud's resources
        runner.drain()
    lake_dir = tmp_path / "lake"
    save_lake(lake_dir, local_cloud.client("s3"), bucket)
    return local_cloud, runner, lake_dir


def test_staged_events_reach_the_modeler_once_and_the_marts_land(modeler_run):
    cloud, runner, lake_dir = modeler_run
    stats = runner.stats["ModelerFunction"]
    # the subscription filter lets only dataset.staged through; one invocation serves the three of them
    assert (stats.invocations, stats.received, stats.succeeded, stats.failed) == (1, 3, 3, 0)
    assert cloud.queue_counts("ModelQueue") == (0, 0)
    for spec in MARTS:
        if spec.partitioned:  # one object per survey and year
            assert list((lake_dir / spec.prefix).glob(f"survey=*/year=*/{spec.name}.parquet")), spec.name
        else:
            assert (lake_dir / spec.data_key).is_file(), spec.name
        assert (lake_dir / spec.lineage_key).is_file(), spec.name
    assert (lake_dir / "marts/_lineage/graph.mmd").read_text().startswith("flowchart LR")
    # marts.built went out on the topic, to the notifier's queue
    sqs = cloud.client("sqs")
    bodies = [
        json.loads(json.loads(m["Body"])["Message"])
        for m in sqs.receive_message(QueueUrl=cloud.queue_urls["NotifyQueue"], MaxNumberOfMessages=10)["Messages"]
    ]
    built = [b for b in bodies if b["event_type"] == "marts.built"]
    assert len(built) == 1 and built[0]["counts"]["published"] == len(MARTS)


def test_glue_tables_point_at_the_mart_folders_and_athena_has_the_report_queries(modeler_run):
    cloud, _, _ = modeler_run
    glue, athena = cloud.client("glue"), cloud.client("athena")
    database, bucket = cloud.ref("GlueDatabase"), cloud.ref("LakeBucket")
    for spec in MARTS:
        table = glue.get_table(DatabaseName=database, Name=spec.table_name)["Table"]
        assert table["StorageDescriptor"]["Location"] == f"s3://{bucket}/{spec.prefix}"
        columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
        assert columns + [k["Name"] for k in table.get("PartitionKeys", [])] == [
            *(n for n in spec.schema.names if n not in spec.partition_by),
            *spec.partition_by,
        ]
    workgroup = cloud.ref("AthenaWorkGroup")
    ids = athena.list_named_queries(WorkGroup=workgroup)["NamedQueryIds"]
    queries = [athena.get_named_query(NamedQueryId=i)["NamedQuery"] for i in ids]
    for report in ("population_stats", "bls_best_year", "series_population", "bls_population_correlation"):
        assert any(f"FROM {report}" in q["QueryString"] and q["Database"] == database for q in queries), report
    coverage = [q for q in queries if "FROM agg_coverage_comarca" in q["QueryString"]]
    assert len(coverage) == 1 and coverage[0]["Name"].endswith("-catalunya-coverage")


def test_the_run_output_prints_the_three_report_answers(modeler_run):
    _, _, lake_dir = modeler_run
    from localrun.reports import print_reports

    lines: list[str] = []
    print_reports(lake_dir, lines.append)
    text = "\n".join(lines)
    assert "322,069,808.00" in text  # mean 2013-2018
    assert "3,796,119.94" in text and "4,158,441.04" in text  # ddof=0, ddof=1
    assert "6 of 6 years present" in text
    assert "bls_best_year: 282 series, one row each" in text
    assert "PRS30006032 Q01, 32 years, 10 with a population, 22 without" in text
    assert "    2020     -7.0               -" in text  # 2020 kept, no population


def _kernelspec(tmp_path: Path) -> Path:
    """A kernelspec that starts this very interpreter (the project venv's python) with ipykernel."""
    folder = tmp_path / "jupyter" / "kernels" / "odp-venv"
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "open-data pipeline (.venv)",
        "language": "python",
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    return tmp_path / "jupyter"


def test_the_notebook_runs_top_to_bottom_on_the_local_lake(modeler_run, tmp_path, monkeypatch):
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    _, _, lake_dir = modeler_run
    monkeypatch.setenv("JUPYTER_PATH", str(_kernelspec(tmp_path)))
    monkeypatch.setenv("ODP_LAKE", str(lake_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # IPC transport: the kernel talks over local sockets, not TCP
    manager = KernelManager(kernel_name="odp-venv", transport="ipc", ip=str(tmp_path / "kernel-ipc"))
    client = NotebookClient(notebook, km=manager, timeout=300, resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell

    outputs = "\n".join(
        o.get("text", "") + json.dumps(o.get("data", {}))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
    )
    assert f"python: {sys.executable}" in outputs  # the kernel is the project venv's interpreter
    assert f"lake: {lake_dir}" in outputs
    assert "322,069,808.00" in outputs
    assert "PRS30006032" in outputs
    assert "flowchart LR" in outputs
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    # population, best years, PRS30006032 vs population, correlations; Catalunya: coverage by comarca, the map,
    # electricity by sector
    assert len(images) == 7
    assert "catalunya_coverage: elderly-care places per 1,000 residents aged 65+" in outputs
    assert "most elderly-care places per 1,000 residents aged 65+:" in outputs and "Moianès" in outputs


def test_make_report_writes_the_charts_and_the_html_page(modeler_run):
    _, _, lake_dir = modeler_run
    # -o: treat the venv as up to date (the test already runs in it; never reinstall from the network)
    result = subprocess.run(
        ["make", "-o", ".venv/.installed", "report", f"ARGS=--lake-dir {lake_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    charts = lake_dir / "marts" / "reports" / "charts"
    for name in (
        "population_over_time",
        "best_year_distribution",
        "prs30006032_vs_population",
        "bls_population_correlation",
        "catalunya_coverage_by_comarca",
        "catalunya_coverage_map",
        "catalunya_electricity_by_sector",
    ):
        png = charts / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert png.stat().st_size > 10_000, name
    page = (lake_dir / "marts" / "reports" / "report.html").read_text()
    assert 'src="charts/best_year_distribution.png"' in page
    assert "322,069,808.00" in page
    assert "322,069,808.00" in result.stdout
    assert 'src="charts/catalunya_coverage_map.png"' in page and "<h2>Catalunya</h2>" in page
    assert "catalunya_coverage: elderly-care places per 1,000 residents aged 65+" in result.stdout
