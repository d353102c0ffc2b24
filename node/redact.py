"""What of a configuration may leave the node: every secret replaced by "REDACTED".

Used for the configuration the admin channel shows and for support bundles, which are sent
to other people: a value is redacted when its name says secret, token or password, at any
depth, whatever the value is.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Final

from node.config import ServeConfig

REDACTED: Final = "REDACTED"
_SECRET_NAME: Final = re.compile(r"secret|token|password|passwd", re.IGNORECASE)


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with the values of secret-named keys replaced."""
    if isinstance(value, dict):
        return {
            key: REDACTED if _SECRET_NAME.search(str(key)) and item is not None else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def public_config(config: ServeConfig) -> dict[str, Any]:
    """The serve configuration as JSON, secrets redacted."""
    fields = {
        field.name: _jsonable(getattr(config, field.name)) for field in dataclasses.fields(config)
    }
    return dict(redact(fields))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
