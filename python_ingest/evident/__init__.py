"""Evident: a verifiable data pipeline."""
__version__ = "0.1.0"
