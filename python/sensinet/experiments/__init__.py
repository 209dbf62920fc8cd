"""Reproducible studies behind ``sensinet experiment <name>``."""
