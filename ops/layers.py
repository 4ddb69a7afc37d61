"""The managed layers the template pins, what each release ships (ops/layers.toml), and drift between them.

The template pins each managed layer by release (parameters ``PowertoolsVersion`` and ``AwsSdkPandasVersion``) and
reads its ARN in the deploy region from the publisher's SSM public parameter; ``requirements-dev.txt`` must pin the
libraries that release ships, so the tests run what Lambda runs.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAYERS_TOML = Path(__file__).resolve().parent / "layers.toml"
REQUIREMENTS_DEV = ROOT / "requirements-dev.txt"

# table name in layers.toml -> the template parameter that pins its release
PINNED_BY = {"powertools": "PowertoolsVersion", "aws-sdk-pandas": "AwsSdkPandasVersion"}
# how the template spells each layer's SSM public parameter inside its {{resolve:ssm:...}} reference
TEMPLATE_PATHS = {
    "powertools": "/aws/service/powertools/python/x86_64/python3.13/${PowertoolsVersion}",
    "aws-sdk-pandas": "/aws/service/aws-sdk-pandas/${AwsSdkPandasVersion}/${AWS::Region}/py3.13/x86_64/layer-arn",
}


@dataclass(frozen=True)
class LayerRelease:
    layer: str
    release: str
    ssm_parameter: str  # may hold {region}
    libraries: dict[str, str]

    def parameter_name(self, region: str) -> str:
        """The SSM public parameter holding this release's layer ARN in ``region``."""
        return self.ssm_parameter.format(region=region)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def load_table(path: Path = LAYERS_TOML) -> dict[str, dict[str, LayerRelease]]:
    """layers.toml as ``{layer: {release: LayerRelease}}``."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    table: dict[str, dict[str, LayerRelease]] = {}
    for layer, releases in raw.items():
        for release, row in releases.items():
            libraries = {normalise(k): str(v) for k, v in row.items() if k != "ssm_parameter"}
            table.setdefault(layer, {})[release] = LayerRelease(layer, release, row["ssm_parameter"], libraries)
    return table


def requirement_pins(path: Path = REQUIREMENTS_DEV) -> dict[str, str]:
    """``name==version`` lines of a requirements file (extras dropped), by normalised name."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s;#]+)", line)
        if match:
            pins[normalise(match.group(1))] = match.group(3)
    return pins


def installed_versions(names: list[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def pinned_releases(template: dict[str, Any]) -> dict[str, str]:
    """``{layer: release}`` from the template's parameter defaults."""
    params = template.get("Parameters", {})
    return {layer: str(params.get(param, {}).get("Default", "")) for layer, param in PINNED_BY.items()}


def template_layer_references(template: dict[str, Any]) -> dict[str, list[str]]:
    """Each function's Layers, as the strings the template writes (a ``!Sub`` text or ``Ref:<logical>``)."""
    refs = {}
    for logical, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        layers = []
        for layer in res["Properties"].get("Layers", []):
            if isinstance(layer, dict) and "Fn::Sub" in layer:
                layers.append(str(layer["Fn::Sub"]))
            elif isinstance(layer, dict) and "Ref" in layer:
                layers.append(f"Ref:{layer['Ref']}")
            else:
                layers.append(str(layer))
        refs[logical] = layers
    return refs


def drift(
    template: dict[str, Any],
    table: dict[str, dict[str, LayerRelease]],
    requirements: dict[str, str],
    installed: dict[str, str | None] | None = None,
) -> list[str]:
    """Every disagreement between the template's pinned layers, the table, requirements-dev.txt and the venv.

    Parameters
    ----------
    template: the template as ``localrun.template.load_template`` reads it.
    table: ``load_table()``.
    requirements: ``requirement_pins()`` of requirements-dev.txt.
    installed: installed versions by normalised name; None skips that check.

    Returns
    -------
    One line per problem; empty when all agree.
    """
    problems = []
    for layer, release in pinned_releases(template).items():
        row = table.get(layer, {}).get(release)
        if row is None:
            problems.append(f"{layer} {release}: the template pins it, ops/layers.toml has no row for it")
            continue
        expected_path = TEMPLATE_PATHS[layer]
        template_path = row.ssm_parameter.replace("{region}", "${AWS::Region}").replace(
            release, "${" + PINNED_BY[layer] + "}"
        )
        if template_path != expected_path:
            problems.append(f"{layer} {release}: table parameter {row.ssm_parameter} is not the template's")
        for name, version in row.libraries.items():
            if name in requirements and requirements[name] != version:
                problems.append(
                    f"{name}: requirements-dev.txt pins {requirements[name]}, {layer} {release} ships {version}"
                )
            if installed is not None and installed.get(name) != version:
                problems.append(f"{name}: {installed.get(name)} installed, {layer} {release} ships {version}")
        for name in ("pandas", "pyarrow", "numpy") if layer == "aws-sdk-pandas" else ("aws-lambda-powertools",):
            if name not in requirements:
                problems.append(f"{name}: requirements-dev.txt does not pin it ({layer} {release} ships it)")
    return problems


def layer_order_problems(template: dict[str, Any]) -> list[str]:
    """Functions whose layers do not end with ours: Lambda extracts layers in order, later ones overwriting."""
    problems = []
    for logical, layers in template_layer_references(template).items():
        if not layers or layers[-1] != "Ref:SharedLayer":
            problems.append(f"{logical}: SharedLayer is not the last layer ({layers})")
        pandas = [i for i, text in enumerate(layers) if "aws-sdk-pandas" in text]
        powertools = [i for i, text in enumerate(layers) if "/powertools/" in text]
        if not powertools:
            problems.append(f"{logical}: no Powertools layer")
        if pandas and powertools and pandas[0] > powertools[0]:
            problems.append(f"{logical}: the AWS SDK for pandas layer comes after Powertools")
    return problems
