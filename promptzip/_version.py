"""The version, at the bottom floor (the report and the package both name it)."""

__version__ = "0.1.0"
