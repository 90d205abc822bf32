"""Rules for user-given strings that become file paths, registry names or printed settings.

One safe-name rule for symbols, environment names and every other name that ends up in a path
or an MLflow registered-model name, one check of run-folder path parts, and one rule against
credentials inside URIs (with the redaction used when such a URI is reported).
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import SplitResult, urlsplit

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

__all__ = [
    "CREDENTIALS_ERROR",
    "CREDENTIALS_HINT",
    "SAFE_NAME_RULE",
    "CredentialFreeUri",
    "SafeName",
    "is_safe_name",
    "path_part_problem",
    "redact_uri",
    "uri_has_credentials",
]

# ASCII only: the name is a file name on every filesystem and object store, a part of an
# MLflow registered-model name (which refuses '/' and ':') and of a Vertex model name. '__'
# is out because the feature matrix joins symbol and feature names with it; '..' because a
# path part made of it leaves its folder. Index tickers such as '^GSPC' are renamed (GSPC).
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SAFE_NAME_RULE = (
    "1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit, "
    "without '..' or '__'"
)


def is_safe_name(value: object) -> bool:
    """Whether `value` is a string that follows :data:`SAFE_NAME_RULE`."""
    return (
        isinstance(value, str)
        and _SAFE_NAME.fullmatch(value) is not None
        and ".." not in value
        and "__" not in value
    )


def _safe_name(value: str) -> str:
    if not is_safe_name(value):
        raise ValueError(f"not a safe name; use {SAFE_NAME_RULE}")
    return value


SafeName = Annotated[str, AfterValidator(_safe_name)]
"""A config string that must follow :data:`SAFE_NAME_RULE` (checked when the config loads)."""


def path_part_problem(part: str) -> str | None:
    """Why `part` cannot be one component of a run-folder path, or None when it can."""
    if not part:
        return "is empty"
    if part.startswith("/"):
        return "is an absolute path"
    if "/" in part or "\\" in part:
        return "contains a path separator"
    if ".." in part:
        return "contains '..'"
    return None


# ----------------------------------------------------------------------------- credentials

CREDENTIALS_ERROR = "uri_credentials"
"""The pydantic error type of a URI with credentials."""
CREDENTIALS_HINT = (
    "a URI must not carry a password; give it through the environment, from a Kubernetes "
    "Secret in a cluster: PGPASSWORD for postgresql://, MLFLOW_TRACKING_USERNAME and "
    "MLFLOW_TRACKING_PASSWORD for an http(s):// MLflow server, AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY or GOOGLE_APPLICATION_CREDENTIALS for object stores"
)
_SECRET_KEY_ENDINGS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "signature",
    "secret_access_key",
)
_REDACTED = "***"


def _split(value: str) -> SplitResult | None:
    if "://" not in value:
        return None  # a plain path has neither user information nor a query
    try:
        return urlsplit(value)
    except ValueError:  # e.g. an unbalanced IPv6 bracket; other checks reject such values
        return None


def _is_secret_key(key: str) -> bool:
    lowered = key.strip().lower()
    return lowered in {"sig", "x-amz-credential"} or lowered.endswith(_SECRET_KEY_ENDINGS)


_QUERY_PAIR = re.compile(r"(?P<lead>^|&)(?P<key>[^=&]*)=(?P<value>[^&]*)")


def _redact_query(query: str) -> str:
    def replace(pair: re.Match[str]) -> str:
        secret = _is_secret_key(pair["key"]) and pair["value"]
        return f"{pair['lead']}{pair['key']}={_REDACTED if secret else pair['value']}"

    return _QUERY_PAIR.sub(replace, query)


def uri_has_credentials(value: str) -> bool:
    """Whether `value` holds `user:password@` or a secret query parameter (`?password=`)."""
    parts = _split(value)
    if parts is None:
        return False
    if parts.password:
        return True
    return any(
        _is_secret_key(pair["key"]) and pair["value"] for pair in _QUERY_PAIR.finditer(parts.query)
    )


def redact_uri(value: str) -> str:
    """`value` with its password and secret query values replaced by `***`."""
    parts = _split(value)
    if parts is None:
        return value
    netloc = parts.netloc
    if parts.password:
        host = netloc.rpartition("@")[2]
        netloc = f"{parts.username or ''}:{_REDACTED}@{host}"
    query = _redact_query(parts.query)
    return parts._replace(netloc=netloc, query=query).geturl()


def _credential_free(value: str) -> str:
    if uri_has_credentials(value):
        raise PydanticCustomError(CREDENTIALS_ERROR, CREDENTIALS_HINT)
    return value


CredentialFreeUri = Annotated[str, AfterValidator(_credential_free)]
"""A config URI that must not hold a password (checked when the config loads)."""
