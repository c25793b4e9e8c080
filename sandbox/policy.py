"""What mechanism source may do: an AST pre-check, a RestrictedPython compile, and the globals.

Three layers, because each catches what the others miss: the pre-check gives an LLM a short,
line-numbered reason it can act on; RestrictedPython rewrites attribute, item and iteration
access into guard calls; the guards and the trimmed builtins decide at run time. All of this
runs inside a worker process with resource limits, which is the layer that actually contains
whatever slips through.
"""

from __future__ import annotations

import ast
import copy
import operator
import re
import types
from collections import deque
from typing import Any

from RestrictedPython import compile_restricted_exec, safe_builtins
from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr_raise,
)

ALLOWED_MODULES = frozenset(
    {"math", "random", "statistics", "itertools", "functools", "collections", "heapq", "bisect"}
)
FILENAME = "<mechanism>"

# Referencing these by name at all is refused, not only calling them: `f = getattr; f(...)`
# would otherwise walk straight past a call-only check.
FORBIDDEN_NAMES = frozenset(
    {
        "eval", "exec", "compile", "open", "globals", "locals", "vars", "getattr", "setattr",
        "delattr", "input", "breakpoint", "__import__",
    }
)  # fmt: skip


class PolicyError(Exception):
    """Mechanism source breaks the sandbox policy; the message is one readable line."""


# --- static checks ---------------------------------------------------------------------------


def _bad_name(name: str | None) -> bool:
    # A bare `_` is the usual throwaway variable and RestrictedPython allows it too.
    return name is not None and name != "_" and name.startswith("_")


def _violations(tree: ast.AST) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []

    def add(node: ast.AST, message: str) -> None:
        found.append((getattr(node, "lineno", 0), getattr(node, "col_offset", 0), message))

    def check_import(node: ast.AST, module: str) -> None:
        if module not in ALLOWED_MODULES:
            allowed = ", ".join(sorted(ALLOWED_MODULES))
            add(node, f"import of '{module}' is not allowed (allowed: {allowed})")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_import(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            check_import(node, "." * node.level + (node.module or ""))
            if any(alias.name == "*" for alias in node.names):
                add(node, "'from ... import *' is not allowed")
        if isinstance(node, ast.alias) and _bad_name(node.asname or node.name.split(".")[0]):
            add(node, f"name '{node.asname or node.name}' is not allowed (leading '_')")
        elif isinstance(node, ast.Name):
            if node.id in FORBIDDEN_NAMES:
                add(node, f"use of '{node.id}' is not allowed")
            elif _bad_name(node.id):
                add(node, f"name '{node.id}' is not allowed (names starting with '_' are reserved)")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                add(node, f"attribute '{node.attr}' is not allowed (leading '_')")
            elif node.attr in ("format", "format_map"):
                add(node, f"str.{node.attr} is not allowed; use an f-string instead")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if _bad_name(node.name):
                add(node, f"definition of '{node.name}' is not allowed (leading '_')")
        elif isinstance(node, ast.arg) and _bad_name(node.arg):
            add(node, f"parameter '{node.arg}' is not allowed (leading '_')")
        elif isinstance(node, ast.Global | ast.Nonlocal):
            for name in node.names:
                if _bad_name(name):
                    add(node, f"name '{name}' is not allowed (leading '_')")
        elif isinstance(node, ast.ExceptHandler) and _bad_name(node.name):
            add(node, f"name '{node.name}' is not allowed (leading '_')")
    return found


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source, FILENAME)
    except SyntaxError as exc:
        raise PolicyError(f"line {exc.lineno or 0}: syntax error: {exc.msg}") from None
    except ValueError as exc:  # e.g. NUL bytes in the source
        raise PolicyError(f"line 0: invalid source: {exc}") from None


def precheck(source: str) -> None:
    """Raise PolicyError naming the first offending line, or return None if the source is fine."""
    found = _violations(_parse(source))
    if found:
        line, _col, message = min(found)
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise PolicyError(f"line {line}: {message}{more}")


# --- compile ---------------------------------------------------------------------------------


def _pure(node: ast.expr) -> bool:
    """Can this expression be evaluated twice without a visible difference?"""
    if isinstance(node, ast.Name | ast.Constant):
        return True
    if isinstance(node, ast.Attribute):
        return _pure(node.value)
    if isinstance(node, ast.Subscript):
        return _pure(node.value) and _pure(node.slice)
    if isinstance(node, ast.Tuple):
        return all(_pure(elt) for elt in node.elts)
    return False


class _AugItemRewriter(ast.NodeTransformer):
    """`memory["n"] += 1` -> `memory["n"] = memory["n"] + 1`.

    RestrictedPython refuses augmented assignment to items outright, yet that is the most
    natural way to update bandit counts in memory. Rewriting is exact only when target and
    key have no side effects, so anything else is left for RestrictedPython to refuse.
    """

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        target = node.target
        if not (isinstance(target, ast.Subscript) and _pure(target)):
            return node
        load = copy.deepcopy(target)
        load.ctx = ast.Load()
        value = ast.BinOp(left=load, op=node.op, right=node.value)
        return ast.copy_location(ast.Assign(targets=[target], value=value), node)


def compile_mechanism(source: str) -> types.CodeType:
    """Pre-check and compile mechanism source under RestrictedPython, or raise PolicyError."""
    precheck(source)
    tree = _AugItemRewriter().visit(_parse(source))
    ast.fix_missing_locations(tree)
    result = compile_restricted_exec(tree, FILENAME)
    if result.errors or result.code is None:
        # RestrictedPython says "Line 3: ..."; match the pre-check's "line 3: ...".
        errors = [re.sub(r"^Line (\d+)", r"line \1", str(e)) for e in result.errors]
        raise PolicyError("; ".join(errors) or "compile failed")
    return result.code


# --- run-time globals ------------------------------------------------------------------------


def _module_view(name: str) -> types.SimpleNamespace:
    """A read-only view of an allowed module without its private names or sub-modules.

    Handing out the real module would leak whatever it imported (statistics.sys.modules
    reaches os); the view holds only public functions, classes and constants.
    """
    module = __import__(name)
    public = {
        key: value
        for key, value in vars(module).items()
        if not key.startswith("_") and not isinstance(value, types.ModuleType)
    }
    return types.SimpleNamespace(**public)


_MODULE_VIEWS = {name: _module_view(name) for name in sorted(ALLOWED_MODULES)}


def _guarded_import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> types.SimpleNamespace:
    if level != 0 or name not in _MODULE_VIEWS:
        raise ImportError(f"import of {name!r} is not allowed")
    return _MODULE_VIEWS[name]


_WRITABLE = (dict, list, set, deque)


def _guarded_write(obj: Any) -> Any:
    # Mechanisms may change their own data (memory, lists they built) but not module views,
    # functions or classes shared with other mechanisms cached in the same worker.
    if isinstance(obj, _WRITABLE):
        return obj
    raise TypeError(f"cannot modify {type(obj).__name__} objects in a mechanism")


_INPLACE = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow,
    "<<=": operator.ilshift, ">>=": operator.irshift, "|=": operator.ior,
    "^=": operator.ixor, "&=": operator.iand, "@=": operator.imatmul,
}  # fmt: skip


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    return _INPLACE[op](target, value)


def _apply(func: Any, *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


def _getitem(obj: Any, key: Any) -> Any:
    return obj[key]


class _DiscardPrint:
    """Target of RestrictedPython's print rewrite: output is swallowed, `printed` is empty."""

    def __init__(self, _getattr_: Any = None) -> None:
        pass

    def write(self, text: str) -> None:
        pass

    def __call__(self) -> str:
        return ""

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        pass


_EXTRA_BUILTINS = {
    "sorted": sorted, "min": min, "max": max, "sum": sum, "any": any, "all": all,
    "enumerate": enumerate, "zip": zip, "map": map, "filter": filter, "reversed": reversed,
    "list": list, "dict": dict, "set": set, "tuple": tuple, "frozenset": frozenset,
    "range": range, "len": len, "abs": abs, "round": round, "isinstance": isinstance,
    "str": str, "int": int, "float": float, "bool": bool, "iter": iter, "next": next,
    "__import__": _guarded_import,
}  # fmt: skip


def _builtins() -> dict[str, Any]:
    table = {k: v for k, v in safe_builtins.items() if k not in ("setattr", "delattr")}
    table.update(_EXTRA_BUILTINS)
    return table


_BUILTINS = _builtins()


def restricted_globals() -> dict[str, Any]:
    """Fresh globals for executing one compiled mechanism module."""
    return {
        "__builtins__": _BUILTINS,
        "__name__": "mechanism",
        "__metaclass__": type,  # RestrictedPython rewrites `class X:` to use this
        # safer_getattr returns None for a missing attribute; a mechanism with a typo should
        # get an AttributeError it can be told about instead.
        "_getattr_": safer_getattr_raise,
        "_getitem_": _getitem,
        "_getiter_": iter,
        "_write_": _guarded_write,
        "_inplacevar_": _inplacevar,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_apply_": _apply,
        "_print_": _DiscardPrint,
    }
