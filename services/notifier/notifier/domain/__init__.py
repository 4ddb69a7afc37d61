"""The notifier's pure logic: what to tell people, and when a run has settled.

No boto3, no environment, no Powertools: pipeline events and CloudWatch alarm notifications come in; short,
specific notices (what failed, which dataset, why, what to do, links) and run reports come out.

- ``notice``: a notice (kind, subject, body, what makes two notices repeats) and the text helpers;
- ``events``: notices for pipeline events told as they come (failed, quarantined, held, marts built);
- ``alarms``: CloudWatch alarm messages, what each alarm the template declares means, other alarm-topic messages;
- ``runs``: the run ledger's reduction to a report, and when a run settles;
- ``summary``: the run summary, and each source's freshness.
"""
