"""Root conftest: registers the harness options and markers for every pytest run."""
pytest_plugins = ["harness.pytest_plugin", "harness.sweep_plugin"]
