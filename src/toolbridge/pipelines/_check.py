"""Load-time checks of pipeline definitions against the catalog, each error located to ``file:line`` and
the key path: cycles between pipelines, unknown tools and pipelines, templates naming a missing step or
field, arguments a tool does not take or lacks, and values whose type does not match the tool's schema."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from toolbridge._suggest import close_matches
from toolbridge._template import Expression, Template, field_expressions
from toolbridge.errors import ConfigurationError, did_you_mean
from toolbridge.pipelines._model import Pipeline, Step

__all__ = ["check_pipelines"]

Lines = Callable[[Sequence[Any]], int | None]
_ROOTS = frozenset({"input", "steps", "item", "index"})


class _Checker:
    def __init__(self, pipelines: Mapping[str, Pipeline], tools: Mapping[str, Any], lines: Lines) -> None:
        self.pipelines = pipelines
        self.tools = tools  # name → Tool
        self.lines = lines

    def fail(self, pipeline: Pipeline, path: Sequence[Any], message: str, hint: str | None = None) -> None:
        line = self.lines(["pipelines", pipeline.name, *path])
        where = f"{pipeline.where.file}:{line}" if line is not None else pipeline.where.file
        dotted = ".".join(["pipelines", pipeline.name, *(_part(p) for p in path)]).replace(".[", "[")
        raise ConfigurationError(f"{where}: {dotted}: {message}", hint=hint)

    def check(self) -> None:
        for pipeline in self.pipelines.values():
            self._cycles(pipeline, [pipeline.name])
            for i, step in enumerate(pipeline.steps):
                self._step(pipeline, i, step)

    def _cycles(self, pipeline: Pipeline, trail: list[str]) -> None:
        for i, step in enumerate(pipeline.steps):
            target = step.pipeline
            if target is None:
                continue
            if target not in self.pipelines:
                choices = close_matches(target, list(self.pipelines))
                self.fail(
                    pipeline, ["steps", i, "pipeline"], f"no pipeline {target!r}", did_you_mean(choices)
                )
            if target in trail:
                loop = " → ".join([*trail[trail.index(target) :], target])
                self.fail(
                    pipeline,
                    ["steps", i, "pipeline"],
                    f"pipelines call each other in a cycle: {loop}",
                    "a pipeline may not run itself, directly or through others",
                )
            self._cycles(self.pipelines[target], [*trail, target])

    def _step(self, pipeline: Pipeline, i: int, step: Step) -> None:
        earlier = [s.name for s in pipeline.steps[:i]]
        later = [s.name for s in pipeline.steps[i:]]
        scope = _Scope(pipeline, earlier, later, for_each=step.for_each is not None)
        at = ["steps", i]
        for key, expr in (("when", step.when), ("for_each", step.for_each)):
            if expr is not None:
                self._expression(scope, [*at, key], expr, self_output=False)
        for n, predicate in enumerate(step.check.predicates):
            self._expression(scope, [*at, "check", "require", n], predicate, self_output=True)
        if step.tool is not None:
            tool = self._tool(pipeline, [*at, "tool"], step.tool)
            self._arguments(scope, [*at, "arguments"], step.arguments, tool.input_schema, self_output=False)
        else:
            schema = self.pipelines[step.pipeline or ""].input_schema
            self._arguments(scope, [*at, "arguments"], step.arguments, schema, self_output=False)
        if step.compensate is not None:
            tool = self._tool(pipeline, [*at, "compensate", "tool"], step.compensate.tool)
            args = step.compensate.arguments
            self._arguments(
                scope, [*at, "compensate", "arguments"], args, tool.input_schema, self_output=True
            )

    def _tool(self, pipeline: Pipeline, path: list[Any], name: str) -> Any:
        tool = self.tools.get(name)
        if tool is None:
            hint = did_you_mean(close_matches(name, list(self.tools)))
            self.fail(pipeline, path, f"no tool {name!r} in the catalog", hint or "see 'toolbridge tools'")
        return tool

    def _arguments(
        self,
        scope: _Scope,
        path: list[Any],
        template: Template,
        schema: Mapping[str, Any],
        *,
        self_output: bool,
    ) -> None:
        for where, expr in template.expressions():
            self._expression(scope, [*path, *_split(where)], expr, self_output=self_output)
        given = template.value if isinstance(template.value, dict) else {}
        properties = schema.get("properties") or {}
        if properties or schema.get("additionalProperties") is False:
            for name in given:
                if name not in properties:
                    hint = did_you_mean(close_matches(name, list(properties)))
                    listing = f"it takes: {', '.join(sorted(properties))}" if properties else "it takes none"
                    self.fail(scope.pipeline, [*path, name], "not an argument of this tool", hint or listing)
        missing = [r for r in schema.get("required") or [] if r not in given]
        if missing:
            self.fail(scope.pipeline, path, f"missing required argument(s): {', '.join(missing)}")
        for name, expr in field_expressions(template).items():
            self._types(scope, [*path, name], expr, properties.get(name))

    def _types(self, scope: _Scope, path: list[Any], expr: Expression, wanted: Any) -> None:
        refs = expr.references()
        if len(refs) != 1 or expr.parsed.parsed.get("type") not in ("field", "subexpression"):
            return  # a function or projection: its type is not known before it runs
        have = self._schema_of(scope, refs[0].path)
        want = _types_of(wanted)
        got = _types_of(have)
        if want and got and not (want & got) and not ({"number"} <= want and "integer" in got):
            self.fail(
                scope.pipeline,
                path,
                f"${{{expr.source}}} is {' or '.join(sorted(got))} but the tool wants "
                f"{' or '.join(sorted(want))}",
                "convert the value, e.g. with to_string(...) or to_number(...), or pick another field",
            )

    def _schema_of(self, scope: _Scope, path: tuple[str, ...]) -> Any:
        """The JSON Schema of a referenced value, where the definitions say it (None: unknown)."""
        if path[0] == "input":
            return _descend(scope.pipeline.input_schema, path[1:])
        if path[0] == "steps" and len(path) > 1:
            step = scope.pipeline.step(path[1])
            if step.for_each is not None or step.tool is None or step.when is not None:
                return None
            tool = self.tools.get(step.tool)
            output = getattr(tool, "output_schema", None)
            return _descend(output, path[2:]) if output else None
        return None

    def _expression(self, scope: _Scope, path: list[Any], expr: Expression, *, self_output: bool) -> None:
        for ref in expr.references():
            root = ref.path[0]
            allowed = _ROOTS | ({"output"} if self_output else set())
            if root not in allowed:
                self.fail(
                    scope.pipeline,
                    path,
                    f"${{{expr.source}}} reads {root!r}, which is not defined here",
                    f"start with one of: {', '.join(sorted(allowed))}",
                )
            if root in ("item", "index") and not scope.for_each:
                self.fail(
                    scope.pipeline, path, f"${{{expr.source}}}: {root!r} exists only in a for_each step"
                )
            if root == "steps":
                self._step_ref(scope, path, expr, ref.path)
            if root == "input":
                self._field(
                    scope, path, expr, scope.pipeline.input_schema, ref.path[1:], "the pipeline's input"
                )

    def _step_ref(self, scope: _Scope, path: list[Any], expr: Expression, ref: tuple[str, ...]) -> None:
        if len(ref) < 2:
            return
        name = ref[1]
        if name in scope.later:
            self.fail(
                scope.pipeline,
                path,
                f"${{{expr.source}}} reads step {name!r}, which has not run yet at this point",
                "steps read only the outputs of steps before them",
            )
        if name not in scope.earlier:
            hint = did_you_mean(close_matches(name, scope.earlier))
            self.fail(scope.pipeline, path, f"${{{expr.source}}} names no step {name!r}", hint)
        schema = self._schema_of(scope, ref[:2])
        if schema is not None:
            self._field(scope, path, expr, schema, ref[2:], f"the output of step {name!r}")

    def _field(
        self, scope: _Scope, path: list[Any], expr: Expression, schema: Any, rest: Sequence[str], what: str
    ) -> None:
        node = schema
        for name in rest:
            properties = node.get("properties") if isinstance(node, Mapping) else None
            if not isinstance(properties, Mapping) or node.get("type") not in ("object", None):
                return
            if name not in properties:
                if node.get("additionalProperties", True) is not False and not properties:
                    return
                hint = did_you_mean(close_matches(name, list(properties)))
                listing = f"it has: {', '.join(sorted(properties))}"
                self.fail(
                    scope.pipeline, path, f"${{{expr.source}}}: {what} has no field {name!r}", hint or listing
                )
            node = properties[name]


class _Scope:
    def __init__(self, pipeline: Pipeline, earlier: list[str], later: list[str], *, for_each: bool) -> None:
        self.pipeline = pipeline
        self.earlier = earlier
        self.later = later
        self.for_each = for_each


def check_pipelines(
    pipelines: Mapping[str, Pipeline], tools: Iterable[Any], lines: Lines | None = None
) -> None:
    """Raise a located :class:`ConfigurationError` for the first problem found in ``pipelines``."""
    _Checker(pipelines, {t.name: t for t in tools}, lines or (lambda _p: None)).check()


def _descend(schema: Any, rest: Sequence[str]) -> Any:
    node = schema
    for name in rest:
        properties = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(properties, Mapping) or name not in properties:
            return None
        node = properties[name]
    return node


def _types_of(schema: Any) -> set[str]:
    if not isinstance(schema, Mapping):
        return set()
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(k) for k in kind}
    return set()


def _split(where: str) -> list[Any]:
    """``"a.b[0]"`` → ["a", "b", 0]."""
    parts: list[Any] = []
    for piece in where.replace("[", ".[").split("."):
        if not piece:
            continue
        parts.append(int(piece[1:-1]) if piece.startswith("[") else piece)
    return parts


def _part(p: Any) -> str:
    return f"[{p}]" if isinstance(p, int) else str(p)
