"""gpproxy: genetic programming that discovers zero-cost NAS proxies."""

__version__ = "0.1.0"
