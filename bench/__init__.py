"""bench: which pre-trained initialisation to start from when labelled medical images are scarce."""

__version__ = "0.1.0"
