"""The project's own exception types: errors a user can cause and fix."""

from __future__ import annotations


class AlphaFactoryError(Exception):
    """Base class for every error the CLI reports as one line without a traceback."""


class ConfigError(AlphaFactoryError):
    """A configuration file or value is wrong; the message names file, key and what is allowed."""


class DataError(AlphaFactoryError):
    """Input bars are unusable; the message names the file, column or row and the fix."""


class ModelError(AlphaFactoryError):
    """A model artifact is missing, tampered with, or of an unknown family."""
