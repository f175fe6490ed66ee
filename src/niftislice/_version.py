"""The package version: the one place it is written (``pyproject.toml`` reads it from here).

A literal rather than ``importlib.metadata``, whose import alone costs about 0.1 s at every start.
"""

__version__ = "0.1.0"
