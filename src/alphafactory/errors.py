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


def first_line(error: BaseException, fallback: str | None = None) -> str:
    """The first line of an exception's message, for one-line errors; `fallback` (default:
    the exception's type name) when the message is empty."""
    text = str(error).strip()
    return text.splitlines()[0] if text else (fallback or type(error).__name__)
