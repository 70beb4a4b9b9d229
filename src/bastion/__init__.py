"""Bastion (众志成城): an outbreak-response command platform."""

__version__ = "0.1.0"
