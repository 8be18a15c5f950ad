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
        raise RulesError(f"YAML: {exc}", path) from exc


def line_of(obj: Any, default: int = 1) -> int:
    return getattr(obj, "line", 0) or default


def key_line(obj: Any, key: Any, default: int = 1) -> int:
    """The line of `key` in a mapping read by load_yaml, else the mapping's own line."""
    lines = getattr(obj, "key_lines", None) or {}
    return lines.get(key) or line_of(obj, default)


def only(raw: dict, allowed: tuple[str, ...], where: tuple[str, int]) -> None:
    for key in raw:
        if key not in allowed:
            raise RulesError(
                f"unknown key {key!r} (expected one of: {', '.join(allowed)})",
                where[0],
                key_line(raw, key, where[1]),
            )
