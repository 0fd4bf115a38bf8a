"""drumcat: catalog, classify and organize drum and percussion sample archives."""

__version__ = "0.1.0"
