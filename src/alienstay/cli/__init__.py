"""The `alienstay` command: one sub-command a stage, each a thin shell over `alienstay.stages`.

``main`` is the console script's entry point (``pyproject.toml``); the commands live in ``app.py``.
"""

from alienstay.cli.commands import app, main

__all__ = ["app", "main"]
