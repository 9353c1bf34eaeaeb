"""Image sources and the built-in demo data (no network at run time)."""

from .sources import Pool, SourceError, load_labelled, open_pool

__all__ = ["Pool", "SourceError", "load_labelled", "open_pool"]
