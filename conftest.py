"""Root pytest configuration: doctests run over the package, except the CLI entry module."""

collect_ignore = ["pinnsketch/__main__.py"]
