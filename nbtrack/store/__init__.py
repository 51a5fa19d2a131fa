"""The embedded local store: one SQLite database under ``<dir>/nbtrack/``."""

from .local import LocalStore, StoreUnavailable, store_root
from .writer import BatchWriter, RunSink

__all__ = ["BatchWriter", "LocalStore", "RunSink", "StoreUnavailable", "store_root"]
