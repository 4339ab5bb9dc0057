"""The version, in a module of its own: importing it imports nothing else of labelleak (``labelleak/__init__``
pulls in the audit front door lazily, and the report and attacks must not reach up to it)."""

__version__ = "0.1.0"
