"""Fault injection for the local runtime: sources, queues and S3 that misbehave on purpose.

A fault plan (JSON: ``python -m localrun --faults FILE``; ``FaultPlan.from_dict`` in tests) scripts three layers:

- ``source``: the fault source, a hook in the replay server's chain (``localrun.replay``), so the extractor meets a
  misbehaving source over real HTTP on 127.0.0.1: a timeout, a connection reset, 500, 503, 429 with
  ``Retry-After``, a truncated body (the connection breaks off before ``Content-Length`` bytes; or, as
  ``truncated_json``, a complete response whose payload is cut), HTML served with 200, the BLS
  ``REQUEST_NOT_PROCESSED``, schema drift, a slow drip, and the snapshot faults (a listing that omits files, a body
  cut short with a consistent length, Socrata pages repeated, skipped, empty or short, a series or a year missing).
- ``delivery``: delivery faults around the runner, duplicates and poison messages.
- ``aws``: AWS faults through botocore's event system, an S3 error status or the process "crashing" around an S3
  call. A crash is a ``BaseException`` nothing in the handler catches; the runner sees the invocation die and fails
  its whole batch, as Lambda does when the process dies.

Local speed: while a plan is installed, the extractor's HTTP backoff and read timeout are shortened (``http``):
with the production values one persistent fault costs minutes. The code paths (urllib3's ``Retry``, the
``Retry-After`` handling, the timeouts) are the production ones.

Modules: ``spec`` (the plan format), ``source``, ``aws``, ``delivery`` (the three layers), ``plan`` (``FaultPlan``: a
plan installed around a run). The tests' accounting of a faulted run (where every entry and landing ended, lake
comparisons, running ``python -m localrun`` in a subprocess) lives in ``tests/support``.
"""
