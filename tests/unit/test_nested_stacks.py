"""template.yaml and its nested stacks (stacks/catalog.yaml, stacks/monitoring.yaml) agree with each other.

CloudFormation checks none of this before it creates a nested stack, and moto never deploys one: a parameter the
root forgets or misspells, or an output it reads that the child does not declare, fails the deploy on AWS only.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from typing import Any

import pytest

from localrun.template import (
    CATALOG_TEMPLATE,
    MONITORING_TEMPLATE,
    ROOT,
    TEMPLATE,
    TEMPLATE_FILES,
    NestedStackError,
    child_parameter_values,
    inline_nested_stacks,
    load_file,
    nested_stacks,
)


@pytest.fixture(scope="module")
def root() -> dict[str, Any]:
    return load_file(TEMPLATE)


def output_references(node: Any) -> set[tuple[str, str]]:
    """Every (nested stack, output) the node reads: ``!GetAtt Stack.Outputs.Name`` or ``${Stack.Outputs.Name}``."""
    text = json.dumps(node)
    found = set(re.findall(r"\$\{([A-Za-z0-9]+)\.Outputs\.([A-Za-z0-9]+)\}", text))
    found |= set(re.findall(r'"Fn::GetAtt": \["([A-Za-z0-9]+)", "Outputs\.([A-Za-z0-9]+)"\]', text))
    return found


def test_the_root_includes_the_catalogue_and_the_monitoring_as_local_nested_stacks(root):
    stacks = nested_stacks(root)
    assert {logical: path for logical, (path, _) in stacks.items()} == {
        "Catalog": CATALOG_TEMPLATE,
        "Monitoring": MONITORING_TEMPLATE,
    }
    assert set(TEMPLATE_FILES) == {TEMPLATE, CATALOG_TEMPLATE, MONITORING_TEMPLATE}
    # what `sam build` copies and `sam package` uploads: a path relative to template.yaml
    for logical, (path, _) in stacks.items():
        assert root["Resources"][logical]["Properties"]["Location"] == str(path.relative_to(ROOT)), logical


@pytest.mark.parametrize("logical", ["Catalog", "Monitoring"])
def test_the_root_passes_exactly_the_parameters_each_nested_stack_declares(root, logical):
    path, passed = nested_stacks(root)[logical]
    declared = load_file(path)["Parameters"]
    required = {name for name, spec in declared.items() if "Default" not in spec}
    assert required, f"{path.name} declares no parameter without a default"
    missing = sorted(required - set(passed))
    unknown = sorted(set(passed) - set(declared))
    assert (missing, unknown) == ([], [])


@pytest.mark.parametrize(("logical", "parameter"), [("Catalog", "DatabaseName"), ("Monitoring", "AlarmTopicArn")])
def test_a_parameter_the_root_forgets_or_misspells_is_refused(root, logical, parameter):
    path, passed = nested_stacks(root)[logical]
    child = load_file(path)
    forgotten = {k: v for k, v in passed.items() if k != parameter}
    with pytest.raises(NestedStackError, match=f"does not pass the nested stack's parameters \\['{parameter}'\\]"):
        child_parameter_values(logical, child, forgotten)
    misspelt = {**forgotten, parameter.lower(): passed[parameter]}
    with pytest.raises(NestedStackError, match=f"does not declare: \\['{parameter.lower()}'\\]"):
        child_parameter_values(logical, child, misspelt)


def test_every_nested_stack_output_the_root_reads_exists(root):
    read = output_references({k: root.get(k, {}) for k in ("Resources", "Outputs", "Globals")})
    assert read >= {("Catalog", "DatabaseName"), ("Catalog", "WorkGroupName"), ("Monitoring", "DashboardName")}
    stacks = nested_stacks(root)
    for logical, output in sorted(read):
        assert logical in stacks, logical
        assert output in load_file(stacks[logical][0]).get("Outputs", {}), f"{logical}.Outputs.{output}"


def test_an_output_the_nested_stack_does_not_declare_is_refused(root):
    planted = copy.deepcopy(root)
    env = planted["Resources"]["TransformerFunction"]["Properties"]["Environment"]["Variables"]
    env["GLUE_DATABASE"] = {"Fn::GetAtt": ["Catalog", "Outputs.GlueDatabase"]}
    with pytest.raises(NestedStackError, match="Catalog.Outputs.GlueDatabase: the nested stack declares no such"):
        inline_nested_stacks(planted)
    planted = copy.deepcopy(root)
    planted["Outputs"]["GlueDatabaseName"]["Value"] = {"Fn::Sub": "${Catalog.Outputs.Database}"}
    with pytest.raises(NestedStackError, match="Catalog.Outputs.Database: the nested stack declares no such"):
        inline_nested_stacks(planted)


@pytest.mark.parametrize("path", [CATALOG_TEMPLATE, MONITORING_TEMPLATE], ids=lambda p: p.name)
def test_no_nested_stack_builds_a_name_from_its_own_stack(path):
    """A nested stack's name and id are not the root's: the Glue database would lose the root stack id's tail,
    and the alarms and dashboard the names the notifier's links expect."""
    text = path.read_text()
    assert "AWS::StackName" not in text
    assert "AWS::StackId" not in text


def test_a_nested_stack_that_uses_its_own_stack_name_is_refused(root, tmp_path):
    text = CATALOG_TEMPLATE.read_text().replace("Name: !Ref ResourcePrefix", "Name: !Ref AWS::StackName", 1)
    assert text != CATALOG_TEMPLATE.read_text()
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "catalog.yaml").write_text(text)
    (tmp_path / "stacks" / "monitoring.yaml").write_text(MONITORING_TEMPLATE.read_text())
    with pytest.raises(NestedStackError, match=r"catalog.yaml: uses \['AWS::StackName'\]"):
        inline_nested_stacks(copy.deepcopy(root), tmp_path)


def test_the_glue_database_name_carries_the_root_stack_ids_tail(root):
    passed = nested_stacks(root)["Catalog"][1]["DatabaseName"]
    assert passed == {
        "Fn::Sub": [
            "opendata_${Stage}_${StackSuffix}",
            {
                "StackSuffix": {
                    "Fn::Select": [
                        4,
                        {"Fn::Split": ["-", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]},
                    ]
                }
            },
        ]
    }


def test_the_stacks_split_by_concern(root):
    """The root holds the pipeline; the catalogue and the monitoring hold nothing else."""
    kinds = {path: {r["Type"] for r in load_file(path)["Resources"].values()} for path in TEMPLATE_FILES}
    assert kinds[CATALOG_TEMPLATE] == {
        "AWS::Glue::Database",
        "AWS::Glue::Table",
        "AWS::Athena::WorkGroup",
        "AWS::Athena::NamedQuery",
    }
    assert kinds[MONITORING_TEMPLATE] == {
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::Budgets::Budget",
        "AWS::SNS::Subscription",
        "AWS::SNS::TopicPolicy",
    }
    assert not kinds[TEMPLATE] & (kinds[CATALOG_TEMPLATE] | {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard"})


def test_the_deploy_allows_nested_stacks_and_their_transform():
    """A nested stack (and the LanguageExtensions transform in one) needs CAPABILITY_AUTO_EXPAND at every deploy."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    deploys = {
        env: sections["deploy"]["parameters"]
        for env, sections in config.items()
        if isinstance(sections, dict) and "deploy" in sections
    }
    assert set(deploys) == {"default", "dev", "prod"}
    for env, parameters in deploys.items():
        assert {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"} <= set(parameters["capabilities"].split()), env
