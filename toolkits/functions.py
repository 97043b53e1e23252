"""Custom tools: ``@tool`` turns a function into a function tool the model can call.

    @tool
    def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
        '''Current weather for a city.

        Args:
            city: The city's name.
        '''

The JSON schema comes from the type hints (pydantic models welcome) and the docstring; arguments
are validated with pydantic; sync functions run in a worker thread. Loose functions become tools
of the ``functions`` namespace; a class whose methods carry ``@tool`` becomes a namespace of its
own (``calc.add``), named by ``namespace_name`` on the class or the class name in snake case.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints, overload

import anyio
import anyio.to_thread
import pydantic

from agent.errors import InvalidArguments, ToolError, ToolTimeout, UserError
from toolkits.base import (
    RunContext,
    ToolCall,
    Toolkit,
    ToolNamespace,
    ToolReply,
    ToolSession,
    ToolSpec,
)

_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?):\s*$")
_THREADS = anyio.CapacityLimiter(16)  # sync tools must not exhaust anyio's default pool


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Summary text and per-argument descriptions from a Google-style docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    last: str | None = None
    for line in lines:
        header = _SECTION.match(line)
        if header:
            section, last = header.group(1), None
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            m = _ARG_LINE.match(line)
            if m and not line.startswith("        "):
                last = m.group(1).lstrip("*")
                params[last] = m.group(2).strip()
            elif last and line.strip():
                params[last] += " " + line.strip()
    return "\n".join(summary).strip(), params


def _inline_refs(schema: Any, defs: Mapping[str, Any]) -> Any:
    """Harmony renders plain JSON schema; it has no notion of ``$ref``, so inline them."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline_refs(defs[schema["$ref"].split("/")[-1]], defs)
        return {k: _inline_refs(v, defs) for k, v in schema.items() if k not in ("title", "$defs")}
    if isinstance(schema, list):
        return [_inline_refs(v, defs) for v in schema]
    return schema


@dataclass(frozen=True)
class FunctionTool:
    """A function the model can call, with its validated arguments model."""

    name: str
    description: str
    fn: Callable[..., Any]
    args_model: type[pydantic.BaseModel]
    single_model_arg: str | None  # the parameter name when the one argument is a pydantic model
    timeout_s: float | None

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self._spec.parameters or {})

    @functools.cached_property
    def _spec(self) -> ToolSpec:  # pydantic builds a schema in ~0.1 ms: once per tool is enough
        schema = self.args_model.model_json_schema()
        return ToolSpec(self.name, self.description, _inline_refs(schema, schema.get("$defs", {})))

    def spec(self) -> ToolSpec:
        return self._spec

    def validate(self, arguments: str) -> dict[str, Any]:
        text = arguments.strip() or "{}"
        try:
            model = self.args_model.model_validate_json(text)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            raise InvalidArguments(
                f"invalid arguments for {self.name}: {problems}. Expected JSON matching "
                f"{json.dumps(self.parameters)}"
            ) from None
        if self.single_model_arg:
            return {self.single_model_arg: model}
        return {name: getattr(model, name) for name in type(model).model_fields}

    async def invoke(self, arguments: str) -> Any:
        kwargs = self.validate(arguments)
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(**kwargs)
        # abandon_on_cancel: a hung sync tool cannot hold the run past its timeout (the thread
        # finishes in the background; Python threads cannot be killed).
        return await anyio.to_thread.run_sync(lambda: self.fn(**kwargs), limiter=_THREADS,
                                              abandon_on_cancel=True)


def _build(fn: Callable[..., Any], name: str | None, timeout_s: float | None) -> FunctionTool:
    summary, arg_docs = _parse_docstring(fn.__doc__)
    hints = get_type_hints(fn, include_extras=True)
    params = [p for p in inspect.signature(fn).parameters.values() if p.name not in ("self", "cls")]
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        raise UserError(f"tool {fn.__qualname__}: *args/**kwargs cannot be described to the model")
    single = None
    if len(params) == 1:
        hint = hints.get(params[0].name)
        if isinstance(hint, type) and issubclass(hint, pydantic.BaseModel):
            single = params[0].name
            return FunctionTool(name or fn.__name__, summary or hint.__doc__ or "", fn, hint,
                                single, timeout_s)
    fields: dict[str, Any] = {}
    for p in params:
        if p.name not in hints:
            raise UserError(f"tool {fn.__qualname__}: parameter {p.name!r} needs a type hint")
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (hints[p.name], pydantic.Field(default, description=arg_docs.get(p.name)))
    model = pydantic.create_model(  # type: ignore[call-overload]
        f"{fn.__name__}_args", __config__=pydantic.ConfigDict(extra="forbid"), **fields
    )
    return FunctionTool(name or fn.__name__, summary, fn, model, None, timeout_s)


@overload
def tool(fn: Callable[..., Any], /) -> Callable[..., Any]: ...
@overload
def tool(*, name: str | None = None, timeout_s: float | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...  # noqa: E501


def tool(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
         timeout_s: float | None = None) -> Any:
    """Mark a function (or a method) as a tool; usable bare or with options.

    The function stays callable as before; the tool description is attached to it.
    """

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        f.__oss_tool__ = (name, timeout_s)  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class FunctionToolkit(Toolkit):
    """A namespace of function tools: loose functions (``functions``) or one object's methods."""

    def __init__(self, tools: Iterable[FunctionTool], *, name: str = "functions",
                 description: str | None = None) -> None:
        self.name = name
        self.description = description
        self.tools = {t.name: t for t in tools}

    @classmethod
    def from_functions(cls, fns: Iterable[Callable[..., Any]]) -> FunctionToolkit:
        tools = []
        for fn in fns:
            name, timeout_s = getattr(fn, "__oss_tool__", (None, None))
            tools.append(_build(fn, name, timeout_s))
        return cls(tools)

    @classmethod
    def from_object(cls, obj: object) -> FunctionToolkit:
        """A namespace from an object's ``@tool`` methods."""
        tools = []
        for attr in dir(type(obj)):
            member = getattr(obj, attr)
            marker = getattr(member, "__oss_tool__", None)
            if marker is not None and callable(member):
                tools.append(_build(member, marker[0] or attr, marker[1]))
        if not tools:
            raise UserError(f"{type(obj).__name__} has no @tool methods")
        name = getattr(obj, "namespace_name", None) or _snake(type(obj).__name__)
        summary, _ = _parse_docstring(type(obj).__doc__)
        return cls(tools, name=name, description=summary or None)

    def namespace(self, policy: object = None) -> ToolNamespace:
        return ToolNamespace(self.name, self.description,
                             tuple(t.spec() for t in self.tools.values()), "developer")

    def session(self, ctx: RunContext) -> ToolSession:
        return _FunctionSession(self, ctx)


class _FunctionSession(ToolSession):
    def __init__(self, toolkit: FunctionToolkit, ctx: RunContext) -> None:
        self.toolkit = toolkit
        self.ctx = ctx

    async def call(self, call: ToolCall) -> ToolReply:
        fn = self.toolkit.tools.get(call.method or "")
        if fn is None:
            valid = ", ".join(f"{self.toolkit.name}.{n}" for n in self.toolkit.tools)
            raise ToolError(f"no tool named {call.recipient}; valid tools: {valid}")
        timeout = self.ctx.policy.timeout_for(call.recipient)
        if fn.timeout_s is not None:
            timeout = min(timeout, fn.timeout_s)
        try:
            with anyio.fail_after(timeout):
                value = await fn.invoke(call.arguments)
        except TimeoutError:
            raise ToolTimeout(f"{call.recipient} timed out after {timeout:g} seconds.") from None
        except ToolError:
            raise
        except Exception as exc:  # the user's function failed: the model may try differently
            raise ToolError(f"{call.recipient} raised {type(exc).__name__}: {exc}") from exc
        return ToolReply(value if isinstance(value, str) else _to_json(value))


def _to_json(value: Any) -> str:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
