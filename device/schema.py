"""A small data-driven validator for board files and app settings.

A spec is a plain dict (so apps can declare theirs as data)::

    {"type": "int" | "float" | "bool" | "str" | "dict" | "list" | "any"
             (or a list of these, tried in order, e.g. ["int", "str"]),
     "required": bool, "default": value, "nullable": bool,
     "min": n, "max": n, "gt": n, "lt": n,      # numbers only
     "choices": [...],
     "fields": {name: spec},   # dict with known keys; any other key is an error
     "values": spec,           # dict with free keys (with "fields": the keys not listed)
     "items": spec, "min_items": n, "max_items": n,   # lists
     "check": fn(value, path),  # raises ConfigError; runs on the normalized value
     "doc": "one line"}

``validate`` returns a normalized deep copy: absent fields get a deep copy of
their default (itself validated, so a ``{}`` default fills nested defaults),
ints become floats where a float is expected. A field that is absent, not
required and has no default is left out. Errors are ``ConfigError`` whose path
reads like ``sim.faults[0].kind``; an unknown key is reported at the path of
the dict that holds it.
"""

import math

from device.errors import ConfigError


def validate(spec: dict, value, path: str = "", source: str = ""):
    """Check ``value`` against ``spec``; return the normalized copy or raise ConfigError."""
    try:
        return _check(spec, value, path)
    except ConfigError as exc:
        if source and not exc.source:
            raise ConfigError(exc.path, exc.message, source) from None
        raise


def join_path(path: str, key: str) -> str:
    return key if not path else path + "." + key


def type_name(value: object) -> str:
    """The JSON-ish name of a value's type, as error messages show it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def show(value: object) -> str:
    """A value as it appears in messages: strings quoted, the rest plain."""
    if isinstance(value, str):
        return "'" + value + "'"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def copy_data(value):
    """Deep copy of JSON-like data (dicts, lists, scalars)."""
    if isinstance(value, dict):
        out = {}
        for k in value:
            out[k] = copy_data(value[k])
        return out
    if isinstance(value, (list, tuple)):
        return [copy_data(v) for v in value]
    return value


def _coerce(kind: str, value: object) -> tuple:
    """(True, normalized) when ``value`` is of ``kind``, else (False, None)."""
    is_bool = isinstance(value, bool)
    if kind == "int":
        if isinstance(value, int) and not is_bool:
            return True, value
    elif kind == "float":
        # bool is an int subclass on both interpreters: keep it out of numbers.
        if (isinstance(value, int) and not is_bool) or isinstance(value, float):
            return True, float(value)
    elif kind == "bool":
        if is_bool:
            return True, value
    elif kind == "str":
        if isinstance(value, str):
            return True, value
    elif kind == "dict":
        if isinstance(value, dict):
            return True, value
    elif kind == "list":
        if isinstance(value, (list, tuple)):
            return True, value
    elif kind == "any":
        return True, value
    else:
        raise ConfigError("", "schema bug: unknown type '" + str(kind) + "'")
    return False, None


def _check(spec: dict, value, path: str):
    if value is None:
        if spec.get("nullable"):
            return None
        raise ConfigError(path, "expected " + _kinds_text(spec) + ", got null")
    kinds = spec.get("type", "any")
    if isinstance(kinds, str):
        kinds = (kinds,)
    for kind in kinds:
        ok, out = _coerce(kind, value)
        if ok:
            break
    else:
        raise ConfigError(path, "expected " + _kinds_text(spec) + ", got " + type_name(value))

    if isinstance(out, float):
        if math.isnan(out) or math.isinf(out):
            raise ConfigError(path, "must be a finite number, got " + str(out))
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        _check_range(spec, out, path)
    choices = spec.get("choices")
    if choices is not None and out not in choices:
        text = ", ".join([str(c) for c in choices])
        raise ConfigError(path, "must be one of " + text + ", got " + show(out))

    if isinstance(out, dict):
        out = _check_dict(spec, out, path)
    elif isinstance(out, (list, tuple)):
        out = _check_list(spec, out, path)
    else:
        out = copy_data(out)

    check = spec.get("check")
    if check is not None:
        check(out, path)
    return out


def _kinds_text(spec: dict) -> str:
    kinds = spec.get("type", "any")
    text = kinds if isinstance(kinds, str) else " or ".join(kinds)
    if spec.get("nullable"):
        return text + " or null"
    return text


def _check_range(spec: dict, num: object, path: str) -> None:
    low = spec.get("min")
    if low is not None and num < low:
        raise ConfigError(path, "must be >= " + str(low) + ", got " + str(num))
    high = spec.get("max")
    if high is not None and num > high:
        raise ConfigError(path, "must be <= " + str(high) + ", got " + str(num))
    above = spec.get("gt")
    if above is not None and num <= above:
        raise ConfigError(path, "must be > " + str(above) + ", got " + str(num))
    below = spec.get("lt")
    if below is not None and num >= below:
        raise ConfigError(path, "must be < " + str(below) + ", got " + str(num))


def _check_dict(spec: dict, value: dict, path: str) -> dict:
    fields = spec.get("fields")
    free = spec.get("values")
    out = {}
    for key in sorted(value):
        if not isinstance(key, str):
            raise ConfigError(path, "keys must be strings, got " + type_name(key))
        if fields is not None and key in fields:
            continue
        if free is not None:
            out[key] = _check(free, value[key], join_path(path, key))
        elif fields is not None:
            known = ", ".join(sorted(fields))
            raise ConfigError(path, "unknown key '" + key + "' (known: " + known + ")")
        else:
            out[key] = copy_data(value[key])
    if fields is not None:
        for name in sorted(fields):
            field = fields[name]
            where = join_path(path, name)
            if name in value:
                out[name] = _check(field, value[name], where)
            elif field.get("required"):
                raise ConfigError(where, "required")
            elif "default" in field:
                out[name] = _check(field, copy_data(field["default"]), where)
    return out


def _check_list(spec: dict, value, path: str) -> list:
    count = len(value)
    low = spec.get("min_items")
    if low is not None and count < low:
        raise ConfigError(path, "needs at least " + str(low) + " item(s), got " + str(count))
    high = spec.get("max_items")
    if high is not None and count > high:
        raise ConfigError(path, "allows at most " + str(high) + " item(s), got " + str(count))
    item = spec.get("items")
    if item is None:
        return [copy_data(v) for v in value]
    return [_check(item, value[i], path + "[" + str(i) + "]") for i in range(count)]


def describe(spec: dict, name: str = "", indent: int = 0) -> list:
    """Human-readable outline of a spec, one line per field (for docs and the CLI)."""
    lines: list = []
    pad = "  " * indent
    if name:
        parts = [pad + name + ": " + _kinds_text(spec)]
        if spec.get("required"):
            parts.append("(required)")
        elif "default" in spec and not isinstance(spec["default"], (dict, list)):
            parts.append("= " + show(spec["default"]))
        for key in ("min", "max", "gt", "lt"):
            if spec.get(key) is not None:
                parts.append(key + " " + str(spec[key]))
        if spec.get("choices") is not None:
            parts.append("one of " + ", ".join([str(c) for c in spec["choices"]]))
        if spec.get("doc"):
            parts.append("- " + spec["doc"])
        lines.append(" ".join(parts))
        indent += 1
    fields = spec.get("fields")
    if fields is not None:
        for key in sorted(fields):
            lines.extend(describe(fields[key], key, indent))
    if spec.get("values") is not None:
        lines.extend(describe(spec["values"], "<name>", indent))
    if spec.get("items") is not None:
        lines.extend(describe(spec["items"], "[]", indent))
    return lines
