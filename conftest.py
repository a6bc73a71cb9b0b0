pytest_plugins = ["itl.pytest_plugin"]
