"""Moved to ``alienstay.persona`` (text-to-image is not editing). This alias keeps callers that
still import ``alienstay.editing.persona`` working until they switch; remove it then."""

from alienstay.persona import DEFAULT_MODEL, PortraitPrompt, read_portrait_prompt, render_portrait  # noqa: F401
