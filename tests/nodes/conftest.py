"""Shared settings and fixtures for the node tests."""

import pytest

from nodes.models.family import SD15
from tests.nodes.checkpoints import save_tiny_checkpoint


@pytest.fixture(scope="package", autouse=True)
def auto_precision_is_fp32():
    """`precision=auto` means fp32 here on every CPU: the reference comparisons hold fp32 tolerances,
    and the suite must not pass or fail by the runner's CPU. Tests of the bf16 default ask for it
    (test_cpu_defaults.py). Package-scoped: the tests after tests/nodes see the real CPU again."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("nodes.models.runtime.cpu_has_native_bf16", lambda: False)
        yield


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A models folder holding one tiny SD1.x checkpoint, `tiny-sd15.safetensors` (files that need
    other models define their own)."""
    root = tmp_path_factory.mktemp("models")
    (root / "checkpoints").mkdir()
    save_tiny_checkpoint(root / "checkpoints", SD15, seed=3, name="tiny-sd15")
    return root
