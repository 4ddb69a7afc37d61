"""The template's AWS::LanguageExtensions (the alarm families' Fn::ForEach), expanded the way CloudFormation does.

Everything that reads the templates here (the local runtime, the template tests, the moto deploy smoke) reads them
through ``localrun.template.load_template``, which expands the loops of template.yaml (the log groups) and of
stacks/monitoring.yaml (the alarm families) itself, file by file; cfn-lint's own expansion of each file is the
reference it must agree with.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from localrun.template import MONITORING_TEMPLATE, TEMPLATE, apply_language_extensions, load_file, load_template

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _literal(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def normalised(node: Any) -> Any:
    """Fn::Sub variables that are literals written into the string; a Sub left without variables a plain string."""
    if isinstance(node, list):
        return [normalised(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: normalised(v) for k, v in node.items()}
    if list(node) == ["Fn::Sub"] and isinstance(node["Fn::Sub"], list):
        text, variables = node["Fn::Sub"][0], dict(node["Fn::Sub"][1])
        for name in [n for n, v in variables.items() if _literal(v)]:
            text = text.replace("${" + name + "}", str(variables.pop(name)))
        node = {"Fn::Sub": [text, variables] if variables else text}
    if list(node) == ["Fn::Sub"] and isinstance(node["Fn::Sub"], str) and not re.search(r"\$\{(?!!)", node["Fn::Sub"]):
        return node["Fn::Sub"]
    return node


def cfn_lint_expansion(path: Path) -> dict[str, Any]:
    from cfnlint.decode import decode
    from cfnlint.template import Template
    from cfnlint.template.transforms._language_extensions import language_extension

    raw, problems = decode(str(path))
    assert not problems
    problems, expanded = language_extension(Template(str(path), raw, ["us-east-1"]))
    assert not problems
    return json.loads(json.dumps(expanded))


@pytest.mark.parametrize("path", [TEMPLATE, MONITORING_TEMPLATE], ids=lambda p: p.name)
def test_each_files_loops_expand_as_cfn_lint_expands_them(path):
    ours = json.loads(json.dumps(load_file(path)))
    reference = cfn_lint_expansion(path)
    assert sorted(ours["Resources"]) == sorted(reference["Resources"])
    for logical, resource in reference["Resources"].items():
        assert normalised(ours["Resources"][logical]) == normalised(resource), logical
    assert not any(key.startswith("Fn::ForEach") for key in ours["Resources"])


def test_the_alarm_families_expand_into_the_stack():
    ours = json.loads(json.dumps(load_template()))
    alarms = [k for k, r in ours["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) == 28
    log_groups = [k for k, r in ours["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"]
    assert len(log_groups) == 5
    assert not any(key.startswith("Fn::ForEach") for key in ours["Resources"])
    assert ours["Transform"] == "AWS::Serverless-2016-10-31"  # what SAM's transform is then given
    assert "Transform" not in load_file(MONITORING_TEMPLATE)  # LanguageExtensions was its only one


def test_a_loop_that_declares_a_resource_twice_is_refused():
    raw = {
        "Transform": ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"],
        "Resources": {
            "Fn::ForEach::Twice": ["Name", ["A", "A"], {"Topic${Name}": {"Type": "AWS::SNS::Topic"}}],
        },
    }
    with pytest.raises(ValueError, match="TopicA is declared twice"):
        apply_language_extensions(copy.deepcopy(raw))
    raw["Resources"]["Fn::ForEach::Twice"][1] = ["A", "B"]
    assert sorted(apply_language_extensions(raw)["Resources"]) == ["TopicA", "TopicB"]
