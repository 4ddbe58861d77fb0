"""Root conftest: registers the harness options, markers and sweep machinery for every pytest run."""
pytest_plugins = ["harness.plugin.options", "harness.plugin.sweep"]
