"""riskwatch: streaming risk early-warning for e-commerce after-sales (see README.md)."""

#: The package version (pyproject.toml reads it from here); `riskwatch --version` prints it.
__version__ = "0.1.0"
