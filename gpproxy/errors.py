"""One exception type for every user-facing failure.

The CLI prints ``str(error)`` as a single line and exits non-zero, so messages
must name the offending thing (file, arch, column, formula) and what to do.
"""


class GpproxyError(Exception):
    """A problem with the user's input or files, reported in one line."""


class ArchError(GpproxyError, ValueError):
    """An architecture string / index / encoding that is not in the space."""


class InUseError(GpproxyError):
    """A run or cache directory is owned by another live process (gpproxy.lock);
    ``what`` says which ("run" or "cache")."""

    def __init__(self, message: str, what: str = ""):
        super().__init__(message)
        self.what = what


class DataError(GpproxyError):
    """A missing, malformed or corrupt data file (table, cache, image batch)."""


class FormulaError(GpproxyError, ValueError):
    """A formula string that does not parse against the primitive whitelist."""
