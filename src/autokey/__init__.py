"""autokey: the backend of a digital game key marketplace."""

__version__ = "0.1.0"
