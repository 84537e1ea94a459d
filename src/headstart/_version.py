"""The package version (a core module, so that any layer may read it without importing the package API)."""

__version__ = "0.1.0"
