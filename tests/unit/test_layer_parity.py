"""The managed layers the template pins, the table of what they ship (ops/layers.toml), requirements-dev.txt and
the installed venv agree: the tests run the libraries Lambda runs."""

from __future__ import annotations

import copy

from checks.sam import package, transform_offline
from localrun.template import load_template
from ops.layers import (
    drift,
    installed_versions,
    layer_order_problems,
    load_table,
    normalise,
    pinned_releases,
    requirement_pins,
)


def _everything():
    template, table = load_template(), load_table()
    names = sorted({n for rows in table.values() for row in rows.values() for n in row.libraries})
    return template, table, requirement_pins(), installed_versions(names)


def test_template_table_requirements_and_venv_agree():
    template, table, requirements, installed = _everything()
    assert pinned_releases(template) == {"powertools": "3.35.0", "aws-sdk-pandas": "3.16.1"}
    assert drift(template, table, requirements, installed) == []
    # pandas 3 is what the layer ships, and what the tests import
    assert requirements[normalise("pandas")].startswith("3.")


def test_moving_a_layer_without_the_table_or_requirements_is_caught():
    template, table, requirements, installed = _everything()
    moved = copy.deepcopy(template)
    moved["Parameters"]["AwsSdkPandasVersion"]["Default"] = "3.17.1"
    assert drift(moved, table, requirements, installed) == [
        "aws-sdk-pandas 3.17.1: the template pins it, ops/layers.toml has no row for it"
    ]
    stale = dict(requirements, pandas="2.2.3")
    assert "pandas: requirements-dev.txt pins 2.2.3, aws-sdk-pandas 3.16.1 ships 3.0.2" in drift(
        template, table, stale, None
    )
    old_venv = dict(installed, pyarrow="20.0.0")
    assert "pyarrow: 20.0.0 installed, aws-sdk-pandas 3.16.1 ships 22.0.0" in drift(
        template, table, requirements, old_venv
    )


def test_layer_arns_come_from_the_ssm_public_parameters_of_the_deploy_region():
    """No layer version number or publisher account is written down: both differ per region."""
    text = load_template()
    for logical, res in text["Resources"].items():
        for layer in res.get("Properties", {}).get("Layers", []) if res["Type"].endswith("Function") else []:
            rendered = str(layer)
            assert "336392948345" not in rendered and "017000801446" not in rendered, logical
            if "Ref" not in layer:
                assert rendered.count("{{resolve:ssm:/aws/service/") == 1, (logical, rendered)
    assert "Layers" not in text["Globals"]["Function"]


def test_our_layers_come_last_so_their_requests_and_pydantic_win():
    template = load_template()
    assert layer_order_problems(template) == []
    # and so they stay after the SAM transform: what CloudFormation creates
    transformed = transform_offline(package(template))
    transformer = transformed["Resources"]["TransformerFunction"]["Properties"]["Layers"]
    assert "aws-sdk-pandas" in str(transformer[0])
    assert "/powertools/" in str(transformer[1])
    assert transformer[2] == {"Ref": next(k for k in transformed["Resources"] if k.startswith("SharedLayer"))}


def test_the_pandas_layer_listed_last_is_caught():
    template = load_template()
    planted = copy.deepcopy(template)
    layers = planted["Resources"]["ModelerFunction"]["Properties"]["Layers"]
    planted["Resources"]["ModelerFunction"]["Properties"]["Layers"] = [layers[2], layers[1], layers[0]]
    problems = layer_order_problems(planted)
    assert len(problems) == 2 and problems[0].startswith("ModelerFunction: SharedLayer is not the last layer")
