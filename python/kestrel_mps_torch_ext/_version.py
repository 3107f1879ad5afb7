"""The package's version, in one place (pyproject.toml and CMake read it here)."""

__version__ = "0.4.0"
