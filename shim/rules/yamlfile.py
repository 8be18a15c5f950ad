"""commands.d files read as YAML that remembers line numbers (cold: imports yaml).

Every error about a rule file names file:line, so the loader keeps the line of each mapping,
sequence, key and item.
"""

from __future__ import annotations

from typing import Any

import yaml

from shim.errors import RulesError


class _LineDict(dict):
    """A mapping that remembers its line and the line of each key."""

    line = 0
    key_lines: dict[Any, int] = {}


class _LineList(list):
    """A list that remembers its line and the line of each item."""

    line = 0
    item_lines: list[int] = []


# libyaml's parser when pyyaml has it (about five times faster); the constructors below, which
# keep line numbers, are Python either way
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    out = _LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            what = type(key).__name__.lstrip("_").replace("Line", "").lower()
            raise RulesError(
                f"a key must be a word or a number, not a {what}", "", key_node.start_mark.line + 1
            )
        if key in out:
            raise RulesError(f"duplicate key {key!r}", "", key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _LineList:
    out = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"cannot read: {exc}", path) from exc
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except RulesError as exc:
        raise RulesError(exc.message.split(": ", 1)[-1], path, exc.line) from exc
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise RulesError(f"YAML: {exc.problem}", path, line) from exc
    except yaml.YAMLError as exc:
        raise RulesError(f"YAML: {exc}", path, 1) from exc
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        # a tag that constructs something odd (`!!timestamp 2001-13-45`, `!!set` of lists)
        raise RulesError(f"YAML: {exc}", path, 1) from exc


def line_of(obj: Any, default: int = 1) -> int:
    return getattr(obj, "line", 0) or default


def key_line(obj: Any, key: Any, default: int = 1) -> int:
    """The line of `key` in a mapping read by load_yaml, else the mapping's own line."""
    lines = getattr(obj, "key_lines", None) or {}
    return lines.get(key) or line_of(obj, default)


def type_name(value: Any) -> str:
    """How an error names what was found: a mapping, a list, a string, true, a number, ..."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return f"a {type(value).__name__}"


def at(raw: Any, key: Any, where: tuple[str, int]) -> tuple[str, int]:
    """file:line of `raw[key]` (the key's own line when the loader kept it)."""
    return where[0], key_line(raw, key, where[1])


def want_str(value: Any, what: str, where: tuple[str, int], empty: bool = True) -> str:
    """`value` when it is a string (non-empty unless `empty`); a file:line error otherwise."""
    if not isinstance(value, str) or (not empty and not value.strip()):
        need = "a string" if empty else "a non-empty string"
        raise RulesError(f"{what} must be {need}, not {type_name(value)}", *where)
    return value


def want_bool(value: Any, what: str, where: tuple[str, int]) -> bool:
    if not isinstance(value, bool):
        raise RulesError(f"{what} must be true or false, not {type_name(value)}", *where)
    return value


def want_int(value: Any, what: str, where: tuple[str, int], low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise RulesError(f"{what} must be a whole number >= {low}, not {type_name(value)}", *where)
    return value


def want_list(raw: dict, key: str, what: str, where: tuple[str, int]) -> list:
    """`raw[key]` as a list ([] when absent or null); a file:line error otherwise."""
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RulesError(f"{what} must be a list, not {type_name(value)}", *at(raw, key, where))
    return value


def want_map(raw: dict, key: str, what: str, where: tuple[str, int]) -> dict:
    """`raw[key]` as a mapping ({} when absent or null); a file:line error otherwise."""
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RulesError(f"{what} must be a mapping, not {type_name(value)}", *at(raw, key, where))
    return value


def want_strs(value: Any, what: str, where: tuple[str, int]) -> list[str]:
    """A list of strings (a lone string is a list of one)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise RulesError(
            f"{what} must be a string or a list of strings, not {type_name(value)}", *where
        )
    return items


def only(raw: dict, allowed: tuple[str, ...], where: tuple[str, int]) -> None:
    for key in raw:
        if key not in allowed:
            raise RulesError(
                f"unknown key {key!r} (expected one of: {', '.join(allowed)})",
                where[0],
                key_line(raw, key, where[1]),
            )
