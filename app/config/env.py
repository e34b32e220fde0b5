"""Scalar settings from the environment, 12-factor style: every key of [server], [database], [delivery] and
[rendering] may be given as ``ALERTBRIDGE_<SECTION>_<KEY>`` (``ALERTBRIDGE_DELIVERY_MAX_IN_FLIGHT=4``). Such a
variable wins over the file: the file's value for that key is then not read at all (so its ``${VAR}`` need not
be set). The text is read as the key's type (integer, number, true/false, or text taken literally: no ``${}``
expansion) and checked exactly like the file's value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from alertbridge.config.model import SCALAR_SECTIONS
from alertbridge.config.values import Check, Ctx

PREFIX = "ALERTBRIDGE_"
#: Names read after the canonical one: DATABASE_URL (the usual name on platforms that provide a database) and
#: ALERTBRIDGE_DATA_DIR (older name of ALERTBRIDGE_DATABASE_DATA_DIR).
FALLBACKS: dict[str, tuple[str, ...]] = {
    "database.url": ("DATABASE_URL",),
    "database.data_dir": ("ALERTBRIDGE_DATA_DIR",),
}
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def variable(section: str, key: str) -> str:
    """The canonical environment variable of a scalar key: ALERTBRIDGE_<SECTION>_<KEY>."""
    return f"{PREFIX}{section}_{key}".upper()


def variables(section: str, key: str) -> tuple[str, ...]:
    """Every environment variable that sets this key, the one that wins first."""
    return (variable(section, key), *FALLBACKS.get(f"{section}.{key}", ()))


def all_variables() -> dict[str, str]:
    """Environment variable -> dotted key, for every scalar key (the docs test walks this)."""
    return {
        var: f"{section}.{f.name}"
        for section, cls in SCALAR_SECTIONS.items()
        for f in dataclasses.fields(cls)
        for var in variables(section, f.name)
    }


def overrides(env: Mapping[str, str], section: str) -> dict[str, tuple[str, str]]:
    """key -> (variable, text) for the keys of `section` set in the environment (empty counts as unset)."""
    found: dict[str, tuple[str, str]] = {}
    for f in dataclasses.fields(SCALAR_SECTIONS[section]):
        for var in variables(section, f.name):
            text = env.get(var, "").strip()
            if text:
                found[f.name] = (var, text)
                break
    return found


def _kind(section: str, key: str) -> str:
    types = {f.name: str(f.type) for f in dataclasses.fields(SCALAR_SECTIONS[section])}
    return types[key] if types[key] in ("int", "float", "bool") else "str"


def reader(section: str, key: str, check: Check) -> Check:
    """A checker for the environment's text of `section.key`: text -> the key's type -> `check`."""
    kind = _kind(section, key)

    def read(text: str, path: str, ctx: Ctx) -> Any:
        value: Any = text
        if kind == "int":
            if not re.fullmatch(r"[+-]?\d+", text):
                raise ctx.error(path, f"must be an integer (got {text!r})")
            value = int(text)
        elif kind == "float":
            try:
                value = float(text)
            except ValueError:
                raise ctx.error(path, f"must be a number (got {text!r})") from None
        elif kind == "bool":
            if text.lower() not in _TRUE + _FALSE:
                raise ctx.error(path, f"must be true or false (or 1/0, yes/no, on/off) (got {text!r})")
            value = text.lower() in _TRUE
        return check(value, path, ctx)

    return read
