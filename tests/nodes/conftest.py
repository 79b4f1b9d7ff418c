"""Shared settings for the node tests."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def auto_precision_is_fp32():
    """`precision=auto` means fp32 here on every CPU: the reference comparisons hold fp32 tolerances,
    and the suite must not pass or fail by the runner's CPU. Tests of the bf16 default ask for it
    (test_cpu_defaults.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("nodes.models.runtime.cpu_has_native_bf16", lambda: False)
        yield
