"""Sources of images (one grammar for every command) and the built-in demo data (no network at run time)."""

from .sources import FORMS, Source, SourceError, load_labelled, open_pool, open_source

Pool = Source  # the former name

__all__ = ["FORMS", "Pool", "Source", "SourceError", "load_labelled", "open_pool", "open_source"]
