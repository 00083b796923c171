"""alienstay: hotel photos an alien guest can search and trust."""

__version__ = "0.1.0"
