"""Settings from text: a dataclass field's value converted to its annotated type and checked.

`--set KEY=VALUE`, YAML and JSON give strings, lists and numbers; :func:`convert_value` turns
them into the field's type (``"2"`` -> 2, ``"1e-4"`` -> 1e-4, ``"true"`` -> True, ``"null"``
-> None for an optional field, ``"[a, b]"`` or ``"a,b"`` -> a tuple) and checks a
:class:`Rule` (a range, a set of values, an odd integer, the items of a tuple). A bad value
raises :class:`~rstn_core.errors.ConfigError`: one line with the key, the value, what is
allowed and an example. :func:`build_section` does it for every field of a dataclass.
"""
from __future__ import annotations

import difflib
import math
import typing
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import yaml

from rstn_core.errors import ConfigError, RstnError

__all__ = ["Rule", "convert_value", "build_section", "did_you_mean", "plain", "all_keys"]


@dataclass(frozen=True)
class Rule:
    """What a field accepts beyond its type: a range, a set of values, an odd integer, the
    items of a tuple."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple | None = None
    odd: bool = False
    item: type | None = None      # tuple fields: the type of each item
    length: int | None = None     # tuple fields: the number of items
    example: str = ""

    def describe(self, typ) -> str:
        """What is allowed, in words, e.g. "an integer >= 1"."""
        if self.choices is not None:
            if typ is tuple:
                return f"a non-empty list of names from {list(self.choices)}"
            return f"one of {list(self.choices)}"
        noun = {int: "an integer", float: "a number", bool: "true or false",
                str: "a non-empty text", tuple: "a list"}.get(typ, "a value")
        if self.odd:
            noun = "an odd integer"
        if typ is tuple:
            noun = (f"a list of {self.length} " if self.length else "a non-empty list of ") + \
                {float: "numbers", int: "integers", str: "names"}.get(self.item, "items")
        if self.lo is not None and self.hi is not None:
            return (f"{noun} in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}"
                    f"{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{noun} {'>' if self.lo_open else '>='} {self.lo:g}"
        return noun


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def plain(v):
    """Tuples -> lists, recursively (the JSON form of a config)."""
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def all_keys(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        out += all_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


def did_you_mean(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _bad(key, value, allowed, example="") -> ConfigError:
    ex = f"; e.g. --set {key}={example}" if example else ""
    return ConfigError(f"config: {key}={value!r} is not allowed: expected {allowed}{ex}.")


def _example(key: str, typ, rule: Rule, default) -> str:
    if rule.example:
        return rule.example
    if rule.choices is not None:
        return str(rule.choices[0])
    if default is not None and not isinstance(default, dict) and not is_dataclass(default):
        return str(plain(default)).replace(" ", "").replace("'", "").lower() \
            if isinstance(default, (bool, tuple)) else str(default)
    return ""


def convert_value(key: str, value, typ, default=None, rule: Rule | None = None):
    """`value` converted to the field type `typ` and checked against ``RULES[key]``.

    Strings (from --set or YAML) are parsed: "2" -> 2, "1e-4" -> 1e-4, "true" -> True,
    "null"/"none" -> None (optional fields), "[a, b]" or "a,b" -> ("a", "b").

    Args:
        key: the dotted key (for the message); typ: the annotated type;
        default: the field's default (the example in the message); rule: its `Rule`.
    Returns:
        the converted value.
    Raises:
        ConfigError: the key, the value and what is allowed, in one line.
    """
    rule = rule or Rule()
    args = typing.get_args(typ)
    optional = type(None) in args
    if args:
        typ = next(a for a in args if a is not type(None))
    if typ is Any or is_dataclass(typ):
        return value
    allowed = rule.describe(typ) + (" (or null)" if optional else "")
    example = _example(key, typ, rule, default)
    bad = _bad(key, value, allowed, example)
    if value is None or (optional and isinstance(value, str)
                         and value.strip().lower() in ("none", "null", "~")):
        if optional:
            return None
        raise bad
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad
    if typ in (int, float):
        out = _number(value, typ)
        if out is None:
            raise bad
        _check_number(out, rule, bad)
        return out
    if typ is str:
        if not isinstance(value, str) or not value.strip():
            raise bad
        if rule.choices is not None and value not in rule.choices:
            raise ConfigError(f"config: {key}={value!r} is not allowed: expected {allowed}"
                              f"{did_you_mean(value, rule.choices)}.")
        return value
    if typ is tuple:
        return _tuple(key, value, rule, bad, allowed)
    if rule.choices is not None and value not in rule.choices:
        raise bad
    return value


def _number(value, typ):
    """int/float of a number or a numeric string, None when it is not one (or not finite)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if typ is int and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if typ is int:
        return int(value) if float(value).is_integer() else None
    return float(value)


def _check_number(v, rule: Rule, bad: ConfigError):
    if rule.choices is not None and v not in rule.choices:
        raise bad
    if rule.lo is not None and (v < rule.lo or (rule.lo_open and v == rule.lo)):
        raise bad
    if rule.hi is not None and (v > rule.hi or (rule.hi_open and v == rule.hi)):
        raise bad
    if rule.odd and v % 2 == 0:
        raise bad


def _tuple(key, value, rule: Rule, bad: ConfigError, allowed: str) -> tuple:
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in "[(":
            try:
                value = yaml.safe_load(text.replace("(", "[").replace(")", "]"))
            except yaml.YAMLError:
                raise bad from None
        else:
            value = [v.strip() for v in text.split(",")] if text else []
    if not isinstance(value, (list, tuple)) or (rule.length and len(value) != rule.length):
        raise bad
    if not value:
        raise ConfigError(f"config: {key}=[] is empty: expected {allowed}"
                          f"{'; e.g. --set ' + key + '=' + rule.example if rule.example else ''}.")
    out = []
    for v in value:
        if rule.item is str:
            if not isinstance(v, str) or (rule.choices and v not in rule.choices):
                ex = f"; e.g. --set {key}={rule.example}" if rule.example else ""
                raise ConfigError(f"config: {key} holds {v!r}: expected names from "
                                  f"{list(rule.choices or ())}"
                                  f"{did_you_mean(str(v), rule.choices or ())}{ex}.")
            out.append(v)
        elif rule.item in (int, float):
            n = _number(v, rule.item)
            if n is None:
                raise bad
            _check_number(n, Rule(lo=rule.lo, lo_open=rule.lo_open), bad)
            out.append(n)
        else:
            out.append(v)
    if rule.item is str and len(set(out)) != len(out):
        raise ConfigError(f"config: {key}={list(value)!r} names a value twice; name each once.")
    return tuple(out)


def build_section(cls, d: dict, prefix: str, source: str, rules: dict, sections: dict,
                  renamed: dict) -> dict:
    """The converted keyword arguments of dataclass `cls` from `d` (unknown keys refused).

    Args:
        cls: the dataclass; d: {field: value}; prefix: the section's dotted prefix ("train.");
        source: where `d` came from (for the messages); rules: {dotted key: Rule};
        sections: {dotted key: dataclass} of nested sections (built recursively);
        renamed: {old dotted key: new one} (named in the message of an unknown key).
    Returns:
        {field: converted value}; nested sections as dataclass instances.
    """
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    defaults = {f.name: f.default for f in fields(cls)}
    unknown = [k for k in d if k not in known]
    if unknown:
        key = prefix + str(unknown[0])
        hint = (f"; {key} was renamed {renamed[key]}" if key in renamed else
                did_you_mean(key, [prefix + k for k in known]))
        raise ConfigError(f"{source}: unknown key {key!r}{hint}; known here: {sorted(known)}.")
    out = {}
    for k, v in d.items():
        key = prefix + k
        sub = sections.get(key)
        if sub is not None and v is not None and not is_dataclass(v):
            if not isinstance(v, dict):
                raise ConfigError(f"{source}: {key} must be a section (a mapping of its keys), "
                                  f"got {v!r}.")
            kwargs = build_section(sub, v, key + ".", source, rules, sections, renamed)
            try:
                out[k] = sub(**kwargs)
            except ConfigError:
                raise
            except RstnError as e:           # a section that checks its own ranges
                raise ConfigError(f"{source}: {key}: {e}") from None
        else:
            try:
                out[k] = convert_value(key, v, hints[k], defaults.get(k), rules.get(key))
            except ConfigError as e:         # name the file the value came from
                if source == "config":
                    raise
                raise ConfigError(f"{source}: {str(e).removeprefix('config: ')}") from None
    return out
