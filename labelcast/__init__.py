"""labelcast: teach a model on a device at the end of a thin link by sending labels, not pixels.

The packages: ``labelcast.codec`` (the contract), ``labelcast.sender`` (ground
station), ``labelcast.receiver`` (device), ``labelcast.profiles`` (link and
device profiles), ``labelcast.datasets`` (built-in demo data and image sources).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
