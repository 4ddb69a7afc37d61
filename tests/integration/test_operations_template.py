"""The template's alarms, dashboard and notifier wiring, read from template.yaml and its nested stacks.

Each check is a function that lists what is missing, so the tests show it passes on the template and fails when
an alarm or a widget is taken out.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from datalake.contracts import EventType, Source
from localrun.template import ROOT, load_template
from notifier.links import DLQ_OF_STAGE, FUNCTIONS, QUEUES

pytestmark = pytest.mark.integration

FRESHNESS_HOURS = 26


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def logical_of(node: Any) -> str | None:
    if isinstance(node, dict) and "Ref" in node:
        return node["Ref"]
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        return node["Fn::GetAtt"][0]
    return None


def alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["Properties"] for r in of_type(template, "AWS::CloudWatch::Alarm").values()]


def dimension_logical(alarm: dict[str, Any], name: str) -> str | None:
    return next((logical_of(d["Value"]) for d in alarm.get("Dimensions", []) if d["Name"] == name), None)


def dead_letter_queues(template: dict[str, Any]) -> set[str]:
    """Every queue that is some queue's DLQ, and every function's (async) DeadLetterQueue."""
    dlqs = {
        logical_of(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for q in of_type(template, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in q["Properties"]
    }
    dlqs |= {
        logical_of(f["Properties"]["DeadLetterQueue"]["TargetArn"])
        for f in of_type(template, "AWS::Serverless::Function").values()
        if "DeadLetterQueue" in f["Properties"]
    }
    return dlqs


def missing_alarms(template: dict[str, Any]) -> list[str]:
    """Every alarm the on-call relies on that the template does not declare (all on AlarmTopic)."""
    declared = [a for a in alarms(template) if {"Ref": "AlarmTopic"} in a.get("AlarmActions", [])]
    missing = []

    def has(namespace: str, metric: str, dimension: str, logical: str) -> bool:
        return any(
            a["Namespace"] == namespace and a["MetricName"] == metric and dimension_logical(a, dimension) == logical
            for a in declared
        )

    for dlq in sorted(dead_letter_queues(template)):
        matching = [
            a
            for a in declared
            if a["MetricName"] == "ApproximateNumberOfMessagesVisible" and dimension_logical(a, "QueueName") == dlq
        ]
        if not any(
            a["Threshold"] == 1 and a["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" for a in matching
        ):
            missing.append(f"{dlq}: no alarm on one or more messages")
    for queue, res in sorted(of_type(template, "AWS::SQS::Queue").items()):
        if "RedrivePolicy" in res["Properties"] and not has(
            "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", queue
        ):
            missing.append(f"{queue}: no alarm on the age of the oldest message")
    for function in sorted(of_type(template, "AWS::Serverless::Function")):
        for metric in ("Errors", "Throttles", "Duration"):
            if not has("AWS/Lambda", metric, "FunctionName", function):
                missing.append(f"{function}: no {metric} alarm")
    for source in Source:
        fresh = [
            a
            for a in declared
            if a["MetricName"] == "FreshnessHours"
            and {d["Name"]: d["Value"] for d in a["Dimensions"]} == {"service": "notifier", "Source": source.value}
        ]
        if not any(
            a["Threshold"] == FRESHNESS_HOURS
            and a["ComparisonOperator"] == "GreaterThanThreshold"
            and a["TreatMissingData"] == "notBreaching"
            for a in fresh
        ):
            missing.append(f"{source.value}: no freshness alarm over {FRESHNESS_HOURS} h missing data not breaching")
    return missing


def test_every_dlq_function_queue_and_source_has_its_alarms(template):
    assert dead_letter_queues(template) == {"ExtractDLQ", "TransformDLQ", "ModelDLQ", "NotifyDLQ", "SchedulerDLQ"}
    assert missing_alarms(template) == []


@pytest.mark.parametrize(
    ("logical", "expected"),
    [
        ("ExtractDLQAlarm", "ExtractDLQ: no alarm on one or more messages"),
        ("SchedulerDLQAlarm", "SchedulerDLQ: no alarm on one or more messages"),
        ("ModelerThrottlesAlarm", "ModelerFunction: no Throttles alarm"),
        ("NotifierDurationAlarm", "NotifierFunction: no Duration alarm"),
        ("TransformQueueAgeAlarm", "TransformQueue: no alarm on the age of the oldest message"),
        ("FreshnessDatausaAlarm", "datausa: no freshness alarm over 26 h missing data not breaching"),
    ],
)
def test_a_missing_alarm_is_caught(template, logical, expected):
    planted = copy.deepcopy(template)
    del planted["Resources"][logical]
    assert missing_alarms(planted) == [expected]


def test_an_alarm_that_notifies_nobody_is_caught(template):
    planted = copy.deepcopy(template)
    planted["Resources"]["ExtractorErrorsAlarm"]["Properties"]["AlarmActions"] = []
    assert missing_alarms(planted) == ["ExtractorFunction: no Errors alarm"]


def test_every_new_function_or_queue_needs_alarms(template):
    planted = copy.deepcopy(template)
    planted["Resources"]["ReportFunction"] = copy.deepcopy(planted["Resources"]["SchedulerFunction"])
    planted["Resources"]["ReportDLQ"] = copy.deepcopy(planted["Resources"]["ModelDLQ"])
    planted["Resources"]["ReportQueue"] = copy.deepcopy(planted["Resources"]["ModelQueue"])
    planted["Resources"]["ReportQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] = {
        "Fn::GetAtt": ["ReportDLQ", "Arn"]
    }
    assert set(missing_alarms(planted)) == {
        "ReportDLQ: no alarm on one or more messages",
        "ReportQueue: no alarm on the age of the oldest message",
        "ReportFunction: no Errors alarm",
        "ReportFunction: no Throttles alarm",
        "ReportFunction: no Duration alarm",
    }


def test_duration_alarms_sit_at_80_percent_of_each_timeout(template):
    timeout_default = template["Globals"]["Function"]["Timeout"]
    for function, res in of_type(template, "AWS::Serverless::Function").items():
        timeout = res["Properties"].get("Timeout", timeout_default)
        [alarm] = [
            a
            for a in alarms(template)
            if a["MetricName"] == "Duration" and dimension_logical(a, "FunctionName") == function
        ]
        assert alarm["Threshold"] == timeout * 1000 * 0.8, function
        assert alarm["Statistic"] == "Maximum"


def test_every_alarm_reports_both_ways_and_links_the_runbook(template):
    for alarm in alarms(template):
        name = alarm["AlarmName"]["Fn::Sub"]
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert "docs/operations.md" in alarm["AlarmDescription"], name
        assert name.startswith("${AWS::StackName}-${Stage}-"), name


def test_the_budget_alarm_is_optional_and_reaches_the_alarm_topic(template):
    parameter = template["Parameters"]["MonthlyBudgetUsd"]
    assert parameter["Default"] == 0
    assert template["Conditions"]["HasBudget"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "MonthlyBudgetUsd"}, 0]}]}
    budget = template["Resources"]["CostBudget"]
    assert budget["Condition"] == "HasBudget"
    assert budget["Properties"]["Budget"]["BudgetLimit"]["Amount"] == {"Ref": "MonthlyBudgetUsd"}
    for notification in budget["Properties"]["NotificationsWithSubscribers"]:
        assert notification["Subscribers"] == [{"SubscriptionType": "SNS", "Address": {"Ref": "AlarmTopic"}}]
    policy = template["Resources"]["AlarmTopicPolicy"]
    assert policy["Condition"] == "HasBudget"
    principals = {s["Principal"]["Service"] for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert principals == {"budgets.amazonaws.com", "cloudwatch.amazonaws.com"}
    key_principals = {
        s["Principal"].get("Service")
        for s in template["Resources"]["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    }
    assert {"budgets.amazonaws.com", "cloudwatch.amazonaws.com"} <= key_principals


def test_the_notifiers_own_alarms_also_reach_the_alert_email(template):
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlertEmail"
    prefix = subscription["Properties"]["FilterPolicy"]["AlarmName"][0]["prefix"]["Fn::Sub"]
    notifier_alarms = [
        a["AlarmName"]["Fn::Sub"]
        for a in alarms(template)
        if dimension_logical(a, "FunctionName") == "NotifierFunction"
        or dimension_logical(a, "QueueName") in {"NotifyQueue", "NotifyDLQ"}
    ]
    assert len(notifier_alarms) == 5
    assert all(name.startswith(prefix) for name in notifier_alarms)
    others = [a["AlarmName"]["Fn::Sub"] for a in alarms(template) if a["AlarmName"]["Fn::Sub"] not in notifier_alarms]
    assert not any(name.startswith(prefix) for name in others)


# -- the dashboard ------------------------------------------------------------------------------------------------


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body with every ${...} replaced by a readable placeholder, parsed as JSON."""
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # The queue names are parameters of the monitoring stack: inlined, they read ${ExtractQueue.QueueName}.
    text, variables = (body, {}) if isinstance(body, str) else body
    names = {k: f"<{logical_of(v)}.QueueName>" for k, v in variables.items()}

    def placeholder(match: re.Match[str]) -> str:
        name = match.group(1)
        return names.get(name, f"<{name}>")

    return json.loads(re.sub(r"\$\{([^}]+)\}", placeholder, text))


def metric_lines(widget: dict[str, Any]) -> list[list[Any]]:
    return [m for m in widget["properties"].get("metrics", []) if isinstance(m[0], str)]


def _alarm_gaps(template: dict[str, Any], body: dict[str, Any]) -> list[str]:
    arns = [arn for w in body["widgets"] if w["type"] == "alarm" for arn in w["properties"]["alarms"]]
    listed = {arn.rsplit(":alarm:", 1)[1] for arn in arns}
    names = [
        a["AlarmName"]["Fn::Sub"].replace("${AWS::StackName}", "<AWS::StackName>").replace("${Stage}", "<Stage>")
        for a in alarms(template)
    ]
    return [f"alarm {name} not on the dashboard" for name in names if name not in listed]


def dashboard_gaps(template: dict[str, Any]) -> list[str]:
    body = dashboard_body(template)
    lines = [
        (w["properties"].get("stat"), m) for w in body["widgets"] if w["type"] == "metric" for m in metric_lines(w)
    ]
    gaps = []

    def shown(namespace: str, metric: str, dimension: str, value: str, stat: str | None = None) -> bool:
        return any(
            m[0] == namespace and m[1] == metric and m[2] == dimension and m[3] == value and (stat is None or s == stat)
            for s, m in lines
        )

    for function in of_type(template, "AWS::Serverless::Function"):
        for metric, stat in (("Invocations", "Sum"), ("Errors", "Sum"), ("Throttles", "Sum"), ("Duration", "p95")):
            if not shown("AWS/Lambda", metric, "FunctionName", f"<{function}>", stat):
                gaps.append(f"{function}: {metric} ({stat})")
    queues = [q for q, res in of_type(template, "AWS::SQS::Queue").items() if "RedrivePolicy" in res["Properties"]]
    for queue in queues:
        for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
            if not shown("AWS/SQS", metric, "QueueName", f"<{queue}.QueueName>"):
                gaps.append(f"{queue}: {metric}")
    for dlq in dead_letter_queues(template):
        if not shown("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", f"<{dlq}.QueueName>"):
            gaps.append(f"{dlq}: depth")
    for source in Source:
        if not any(m[1] == "FreshnessHours" and m[-1] == {"label": source.value} for _, m in lines):
            gaps.append(f"{source.value}: freshness")
    return gaps + _alarm_gaps(template, body)


def test_the_dashboard_is_json_with_widgets_for_every_function_queue_dlq_and_source(template):
    body = dashboard_body(template)
    assert {w["type"] for w in body["widgets"]} == {"text", "alarm", "metric"}
    assert dashboard_gaps(template) == []
    custom = {m[1] for w in body["widgets"] for m in metric_lines(w) if m[0] == "OpenDataPipeline"}
    assert custom == {"FreshnessHours", "RunDatasets", "RunStageSeconds"}
    searches = [
        m[0]["expression"]
        for w in body["widgets"]
        for m in w["properties"].get("metrics", [])
        if isinstance(m[0], dict)
    ]
    assert "SEARCH('{OpenDataPipeline,service}', 'Sum', 3600)" in searches  # every service's own metrics
    for widget in body["widgets"]:  # widgets stay inside the 24-column grid
        assert widget["x"] + widget["width"] <= 24


def test_a_function_missing_from_the_dashboard_is_caught(template):
    planted = copy.deepcopy(template)
    properties = planted["Resources"]["Dashboard"]["Properties"]
    line = '["AWS/Lambda", "Throttles", "FunctionName", "${ExtractorFunction}", {"label": "Extractor"}],'
    assert line in properties["DashboardBody"]["Fn::Sub"]
    properties["DashboardBody"]["Fn::Sub"] = properties["DashboardBody"]["Fn::Sub"].replace(line, "")
    assert dashboard_gaps(planted) == ["ExtractorFunction: Throttles (Sum)"]


def test_a_queue_missing_from_the_dashboard_is_caught(template):
    planted = copy.deepcopy(template)
    properties = planted["Resources"]["Dashboard"]["Properties"]
    line = '["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${ModelDLQ.QueueName}", '
    line += '{"label": "ModelDLQ"}],'
    assert line in properties["DashboardBody"]["Fn::Sub"]
    properties["DashboardBody"]["Fn::Sub"] = properties["DashboardBody"]["Fn::Sub"].replace(line, "")
    assert dashboard_gaps(planted) == ["ModelDLQ: depth"]


def test_a_broken_dashboard_body_is_not_json(template):
    planted = copy.deepcopy(template)
    properties = planted["Resources"]["Dashboard"]["Properties"]
    properties["DashboardBody"]["Fn::Sub"] = properties["DashboardBody"]["Fn::Sub"].replace(
        '"widgets": [', '"widgets": [,', 1
    )
    with pytest.raises(json.JSONDecodeError):
        dashboard_body(planted)


# -- the notifier's wiring -------------------------------------------------------------------------------------------


def test_the_notify_queue_hears_every_pipeline_event_and_every_alarm(template):
    subscription = template["Resources"]["NotifyQueueSubscription"]["Properties"]
    assert subscription["TopicArn"] == {"Ref": "PipelineTopic"}
    assert set(subscription["FilterPolicy"]["event_type"]) == {e.value for e in EventType}
    alarms_in = template["Resources"]["NotifyQueueAlarmSubscription"]["Properties"]
    assert alarms_in["TopicArn"] == {"Ref": "AlarmTopic"} and "FilterPolicy" not in alarms_in


def test_console_links_follow_the_templates_names(template):
    """The notifier builds names from its prefix; the template must name things the same way."""
    prefix = "${AWS::StackName}-${Stage}-"
    for stage, logical in FUNCTIONS.items():
        assert template["Resources"][logical]["Properties"]["FunctionName"] == {"Fn::Sub": f"{prefix}{stage}"}
    for short, logical in QUEUES.items():
        assert template["Resources"][logical]["Properties"]["QueueName"] == {"Fn::Sub": f"{prefix}{short}"}
    for stage, dlq_short in DLQ_OF_STAGE.items():
        assert QUEUES[dlq_short] in dead_letter_queues(template), stage
    assert template["Resources"]["Dashboard"]["Properties"]["DashboardName"] == {"Fn::Sub": f"{prefix}pipeline"}
    assert template["Resources"]["AlertsTopic"]["Properties"]["TopicName"] == {"Fn::Sub": f"{prefix}alerts"}
    env = template["Resources"]["NotifierFunction"]["Properties"]["Environment"]["Variables"]
    assert env["RESOURCE_PREFIX"] == {"Fn::Sub": "${AWS::StackName}-${Stage}"}
    # the logs links name the functions' own log groups: "<LOG_GROUP_PREFIX>/<stage>"
    for stage, logical in FUNCTIONS.items():
        group = template["Resources"][logical]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        name = template["Resources"][group]["Properties"]["LogGroupName"]["Fn::Sub"]
        assert name[0] == env["LOG_GROUP_PREFIX"]["Fn::Sub"][0] + f"/{stage}", stage
        assert name[1] == env["LOG_GROUP_PREFIX"]["Fn::Sub"][1]
    assert env["POWERTOOLS_SERVICE_NAME"] == "notifier"  # the freshness alarms' "service" dimension


def test_housekeeping_runs_often_enough_for_the_freshness_alarm(template):
    events = template["Resources"]["NotifierFunction"]["Properties"]["Events"]
    schedule = events["Housekeeping"]["Properties"]["Schedule"]
    minutes = int(re.fullmatch(r"rate\((\d+) minutes\)", schedule).group(1))
    [period] = {a["Period"] for a in alarms(template) if a["MetricName"] == "FreshnessHours"}
    assert 60 * minutes * 3 <= period  # at least three datapoints in every alarm period


# -- the runbook ------------------------------------------------------------------------------------------------------


def runbook_anchors() -> set[str]:
    """GitHub's anchors for the headings of docs/operations.md."""
    text = (ROOT / "docs" / "operations.md").read_text()
    headings = re.findall(r"^#{2,4} (.+)$", text, re.M)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-") for h in headings}


def test_every_runbook_link_in_messages_and_alarms_has_its_section(template):
    import notifier.domain

    anchors = runbook_anchors()
    code = "".join(p.read_text() for p in sorted(Path(notifier.domain.__file__).parent.glob("*.py")))
    linked = set(re.findall(r"\{RUNBOOK\}#([a-z-]+)", code))
    linked |= set(re.findall(r"#(function-[a-z]+)", code))
    for alarm in alarms(template):
        linked |= set(re.findall(r"docs/operations\.md#([a-z-]+)", alarm["AlarmDescription"]))
    assert {"dlq-not-empty", "queue-age", "freshness", "stage-failed", "dataset-quarantined"} <= linked
    assert linked - anchors == set()
    alarm_names = {
        re.sub(r"^\$\{AWS::StackName\}-\$\{Stage\}-", "", a["AlarmName"]["Fn::Sub"]) for a in alarms(template)
    }
    text = (ROOT / "docs" / "operations.md").read_text()
    for name in alarm_names:  # each alarm, or its family, is in the runbook's table
        family = re.sub(r"^(scheduler|extractor|transformer|modeler|notifier)-", "<function>-", name)
        assert f"`{name}`" in text or f"`{family}`" in text, name
