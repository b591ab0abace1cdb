"""Tidings: an instant-messaging server built on the Timeline model."""

__version__ = "0.1.0"
