"""A tool's input schema compiled to one Python predicate that says "certainly valid" fast.

Validating a call's arguments with jsonschema walks the schema keyword by keyword on every call (about a
fifth of an in-process REST call's CPU). Most tool schemas use a handful of keywords (``type``,
``properties``, ``required``, ``additionalProperties``, ``enum``, bounds), which compile here to nested
closures. The predicate answers ``True`` only when the arguments are valid under the schema's draft
(2020-12, as the catalog's jsonschema validator reads it, or draft-07); ``False`` means "not sure": the
caller then runs the jsonschema validator, which finds the errors and words them. So a keyword this module
does not know (``$ref``, ``oneOf``, ``uniqueItems`` of objects, …) costs speed, never correctness: its part
of the schema compiles to a predicate that is never sure.

Draft-07 (what the TypeScript MCP SDK's servers declare, through zod) asserts the keywords compiled here
as 2020-12 does, but for two: ``items`` as a list (the tuple form) and ``$ref``, whose siblings draft-07
ignores; neither is compiled, so both stay never sure. Keywords draft-07 does not have
(``prefixItems``, ``dependentRequired``, …) are not compiled either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["DRAFT_7", "DRAFT_2020_12", "Check", "compile_check"]

Check = Callable[[Any], bool]
FormatCheck = Callable[[Any, str], bool]

DRAFT_2020_12 = (
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2020-12/schema#",
)
DRAFT_7 = ("http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-07/schema")
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "example",
        "deprecated",
        "readOnly",
        "writeOnly",
        "nullable",
        "$comment",
        "$schema",  # checked by compile_check
        "$id",  # only moves the base of $ref, which is not compiled
        "$defs",  # definitions validate nothing by themselves
    }
)
_TYPES: dict[str, Check] = {
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int or (type(v) is float and v.is_integer()),
    "number": lambda v: type(v) is int or type(v) is float,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
}
_SCALARS = (str, int, float, bool, type(None))


def _never(value: Any) -> bool:
    return False


def _always(value: Any) -> bool:
    return True


def compile_check(
    schema: Any, formats: Mapping[str, FormatCheck], draft: tuple[str, ...] = DRAFT_2020_12
) -> Check | None:
    """The predicate for ``schema`` under ``draft`` (:data:`DRAFT_2020_12` or :data:`DRAFT_7`: the
    ``$schema`` values naming it); None when the schema names another draft (only jsonschema reads those).
    A schema without ``$schema`` is read as 2020-12.

    ``formats`` maps each format name the validator checks to its check (``FormatChecker.checkers``):
    other format names are annotations, as for the validator.
    """
    if isinstance(schema, Mapping) and schema.get("$schema", DRAFT_2020_12[0]) not in draft:
        return None
    return _Compiler(formats).schema(schema)


class _Compiler:
    def __init__(self, formats: Mapping[str, FormatCheck]) -> None:
        self._formats = formats

    def schema(self, schema: Any) -> Check:
        if schema is True:
            return _always
        if not isinstance(schema, Mapping):
            return _never  # False, or not a schema: the validator words it
        checks: list[Check] = []
        rest = {k: v for k, v in schema.items() if k not in _ANNOTATIONS and not k.startswith("x-")}
        if "type" in rest:
            checks.append(self._type(rest.pop("type")))
        if "properties" in rest or "additionalProperties" in rest or "required" in rest:
            properties, required = rest.pop("properties", {}), rest.pop("required", [])
            checks.append(self._object(properties, rest.pop("additionalProperties", True), required))
        for keyword in list(rest):
            build = getattr(self, "_kw_" + keyword, None)
            checks.append(build(rest[keyword], schema) if build is not None else _never)
        return _all(checks)

    def _type(self, names: Any) -> Check:
        wanted = [names] if isinstance(names, str) else names
        if not isinstance(wanted, list) or not all(isinstance(n, str) and n in _TYPES for n in wanted):
            return _never
        tests = [_TYPES[n] for n in wanted]
        if len(tests) == 1:
            return tests[0]
        return lambda v: any(t(v) for t in tests)

    def _object(self, properties: Any, additional: Any, required: Any) -> Check:
        if not isinstance(properties, Mapping) or not isinstance(required, list):
            return _never
        if not all(isinstance(name, str) for name in required):  # a malformed list: jsonschema says so
            return _never
        props = {name: self.schema(sub) for name, sub in properties.items()}
        extra = None if additional is True else self.schema(additional)
        needed = tuple(required)

        def check(v: Any) -> bool:
            if type(v) is not dict:
                return not isinstance(v, dict)  # these keywords pass what is not an object
            for name in needed:
                if name not in v:
                    return False
            for key, item in v.items():
                sub = props.get(key, extra)
                if sub is not None and not sub(item):
                    return False
            return True

        return check

    def _kw_enum(self, values: Any, schema: Any) -> Check:
        if not isinstance(values, list) or not all(type(x) in _SCALARS for x in values):
            return _never
        strings = frozenset(x for x in values if type(x) is str)
        others = [x for x in values if type(x) is not str]
        return lambda v: (v in strings) if type(v) is str else any(_scalar_equal(v, x) for x in others)

    def _kw_const(self, value: Any, schema: Any) -> Check:
        return self._kw_enum([value], schema)

    def _kw_format(self, name: Any, schema: Any) -> Check:
        test = self._formats.get(name) if isinstance(name, str) else None
        if test is None:
            return _always if isinstance(name, str) else _never
        return lambda v: _conforms(test, v, name)

    def _kw_pattern(self, pattern: Any, schema: Any) -> Check:
        try:
            search = re.compile(pattern).search
        except (re.error, TypeError):
            return _never
        return lambda v: not isinstance(v, str) or search(v) is not None

    def _kw_minLength(self, n: Any, schema: Any) -> Check:
        return _bounded(str, n, lambda v, n: len(v) >= n)

    def _kw_maxLength(self, n: Any, schema: Any) -> Check:
        return _bounded(str, n, lambda v, n: len(v) <= n)

    def _kw_minItems(self, n: Any, schema: Any) -> Check:
        return _bounded(list, n, lambda v, n: len(v) >= n)

    def _kw_maxItems(self, n: Any, schema: Any) -> Check:
        return _bounded(list, n, lambda v, n: len(v) <= n)

    def _kw_minProperties(self, n: Any, schema: Any) -> Check:
        return _bounded(dict, n, lambda v, n: len(v) >= n)

    def _kw_maxProperties(self, n: Any, schema: Any) -> Check:
        return _bounded(dict, n, lambda v, n: len(v) <= n)

    def _kw_minimum(self, n: Any, schema: Any) -> Check:
        return _numeric(n, lambda v, n: v >= n)

    def _kw_maximum(self, n: Any, schema: Any) -> Check:
        return _numeric(n, lambda v, n: v <= n)

    def _kw_exclusiveMinimum(self, n: Any, schema: Any) -> Check:
        return _numeric(n, lambda v, n: v > n)

    def _kw_exclusiveMaximum(self, n: Any, schema: Any) -> Check:
        return _numeric(n, lambda v, n: v < n)

    def _kw_items(self, items: Any, schema: Any) -> Check:
        if not isinstance(items, (Mapping, bool)):
            return _never  # a list of schemas is another draft's tuple form
        each = self.schema(items)
        return lambda v: not isinstance(v, list) or all(each(x) for x in v)

    def _kw_uniqueItems(self, unique: Any, schema: Any) -> Check:
        if unique is False:
            return _always
        if unique is not True:
            return _never
        return lambda v: not isinstance(v, list) or (all(type(x) is str for x in v) and len(set(v)) == len(v))

    def _kw_anyOf(self, subs: Any, schema: Any) -> Check:
        if not isinstance(subs, list) or not subs:
            return _never
        checks = [self.schema(s) for s in subs]
        return lambda v: any(c(v) for c in checks)

    def _kw_allOf(self, subs: Any, schema: Any) -> Check:
        if not isinstance(subs, list) or not subs:
            return _never
        return _all([self.schema(s) for s in subs])


def _all(checks: list[Check]) -> Check:
    checks = [c for c in checks if c is not _always]
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(c(v) for c in checks)


def _bounded(kind: type, n: Any, ok: Callable[[Any, int], bool]) -> Check:
    if type(n) is not int:
        return _never
    return lambda v: ok(v, n) if type(v) is kind else not isinstance(v, kind)


def _numeric(n: Any, ok: Callable[[Any, Any], bool]) -> Check:
    if type(n) not in (int, float):
        return _never
    return lambda v: (
        ok(v, n) if type(v) in (int, float) else not isinstance(v, (int, float)) or type(v) is bool
    )


def _scalar_equal(v: Any, x: Any) -> bool:
    """jsonschema's equality for scalars: ``True`` is not ``1``, ``1`` is ``1.0``."""
    if type(v) is bool or type(x) is bool or v is None or x is None:
        return v is x
    return type(v) in (int, float) and type(x) in (int, float) and v == x


def _conforms(test: FormatCheck, value: Any, name: str) -> bool:
    try:
        return bool(test(value, name))
    except Exception:  # noqa: BLE001 - a checker's own error (or a raises= exception): let the validator say
        return False
