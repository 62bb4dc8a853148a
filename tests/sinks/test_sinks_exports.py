"""Every sinks package exports a sorted, complete ``__all__`` and documents itself."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = ["sinks", "sinks.base", "sinks.jsonl", "sinks.clickhouse",
           "sinks.clickhouse.schema", "sinks.clickhouse.chdb_sink"]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__
    assert module.__all__ == sorted(module.__all__)
    public = {attr for attr, value in vars(module).items()
              if not attr.startswith("_") and not inspect.ismodule(value)
              and (inspect.isclass(value) or inspect.isfunction(value))
              and value.__module__ == name}  # defined here, not imported
    assert public <= set(module.__all__)
    for attr in module.__all__:
        assert hasattr(module, attr), attr


def test_importing_sinks_does_not_load_chdb() -> None:
    import subprocess
    import sys

    code = "import sys, sinks; print('chdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"  # JSONL-only users do not pay for the 500 MB engine
