"""Ray is an optional extra: the server and the engine work, and start, without importing it."""

from __future__ import annotations

import subprocess
import sys

from tests.backends.helpers import ROOT


def test_importing_the_server_and_engine_does_not_import_ray():
    code = ("import sys, server, api.app, engine.queue, engine.backends, engine.backends.engine_worker; "
            "from api.state import ServerSettings; ServerSettings(); "
            "sys.exit(1 if 'ray' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr or "ray was imported"


def test_unknown_backend_is_refused_by_name(config):
    import pytest

    from engine.backends import create_backend
    from engine.config import build_executor

    with pytest.raises(ValueError, match="unknown backend 'spark'; expected one of local, ray"):
        create_backend("spark", build_executor(config), config)
