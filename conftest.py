"""Root conftest: pytest's own ``pytester`` drives the plugin in tests/plugin."""

pytest_plugins = ["pytester"]
