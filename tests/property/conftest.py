"""Hypothesis settings for the hostile-input tests: few examples (unit speed), no deadline (moto and pyarrow
have slow first calls), and the same examples on every run (``derandomize``), so CI never flakes on a new one.

``HYPOTHESIS_PROFILE=thorough`` runs many more examples, randomised, when hunting for bugs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "unit",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "unit"))
