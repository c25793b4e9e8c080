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
import random
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

# What each allowed module hands out, name by name. Anything not listed is absent, so a new
# Python version's additions stay out until someone reviews them (a test lists every public
# name of every allowed module and fails on one that is neither here nor in DENIED_EXPORTS).
MODULE_EXPORTS: dict[str, frozenset[str]] = {
    "math": frozenset(
        n for n in dir(__import__("math")) if not n.startswith("_")
    ),  # numbers in, numbers out: C functions on floats and ints
    "random": frozenset(
        {
            "betavariate", "choice", "choices", "expovariate", "gammavariate", "gauss",
            "getrandbits", "getstate", "lognormvariate", "normalvariate", "paretovariate",
            "randbytes", "randint", "random", "randrange", "sample", "setstate", "shuffle",
            "triangular", "uniform", "vonmisesvariate", "weibullvariate", "binomialvariate",
            "seed", "Random", "BPF", "LOG4", "NV_MAGICCONST", "RECIP_BPF", "SG_MAGICCONST",
            "TWOPI",
        }
    ),  # seed and Random are wrapped: both refuse to seed from the OS
    "statistics": frozenset(
        {
            "correlation", "covariance", "fmean", "geometric_mean", "harmonic_mean",
            "linear_regression", "mean", "median", "median_grouped", "median_high",
            "median_low", "mode", "multimode", "pstdev", "pvariance", "quantiles", "stdev",
            "variance", "kde", "kde_random", "NormalDist", "LinearRegression",
            "StatisticsError",
        }
    ),  # only what statistics defines, none of what it imports
    "itertools": frozenset(n for n in dir(__import__("itertools")) if not n.startswith("_")),
    "functools": frozenset({"cmp_to_key", "reduce", "partial", "lru_cache", "cache"}),
    "collections": frozenset(
        {
            "ChainMap", "Counter", "OrderedDict", "UserDict", "UserList", "UserString",
            "defaultdict", "deque", "namedtuple",
        }
    ),
    "heapq": frozenset(n for n in dir(__import__("heapq")) if not n.startswith("_")),
    "bisect": frozenset(n for n in dir(__import__("bisect")) if not n.startswith("_")),
}  # fmt: skip

# Public names left out on purpose, and what each would reach.
DENIED_EXPORTS: dict[str, str] = {
    "random.SystemRandom": "draws from the OS: the same seed would give different runs",
    "functools.update_wrapper": "sets and updates attributes named by strings (__globals__, "
    "__dict__) on any object, inside functools where no guard applies",
    "functools.wraps": "update_wrapper by another name; hides a hook's real signature",
    "functools.WRAPPER_ASSIGNMENTS": "only meaningful to update_wrapper",
    "functools.WRAPPER_UPDATES": "only meaningful to update_wrapper",
    "functools.singledispatch": "register() calls typing.get_type_hints, which evals string "
    "annotations with unrestricted code",
    "functools.singledispatchmethod": "singledispatch by another name",
    "functools.total_ordering": "writes methods into the class it is given (shared classes too)",
    "functools.cached_property": "a descriptor that writes into instances' __dict__ by name",
    "functools.partialmethod": "a descriptor: binds through __get__ on arbitrary classes",
    "functools.recursive_repr": "a decorator that copies attributes like update_wrapper",
    "functools.get_cache_token": "the ABC registry's state, shared by the whole process",
    "functools.RLock": "threading",
    "functools.GenericAlias": "types internals (__origin__, __args__)",
    "functools.namedtuple": "re-export: collections.namedtuple is allowed",
    "functools.Placeholder": "not reviewed",
}


def _reexports(name: str) -> dict[str, str]:
    """Public names a module only imported from elsewhere (statistics.Fraction, ...)."""
    module = __import__(name)
    return {
        f"{name}.{key}": "re-exported from another module (Fraction and Decimal reach the "
        "numbers ABCs); not part of the allowed module itself"
        for key, value in vars(module).items()
        if not key.startswith("_")
        and key not in MODULE_EXPORTS[name]
        and (
            getattr(value, "__module__", None) not in (name, f"_{name}")
            or isinstance(value, int | float | str)  # constants such as math's tau
        )
        and not isinstance(value, types.ModuleType)
    }


DENIED_EXPORTS.update(_reexports("statistics"))

# Attribute names refused at run time although they have no leading underscore: each reaches
# interpreter internals (frames, code, the MRO and its ABCs) or shared registries.
DENIED_ATTRIBUTES = frozenset(
    {
        "mro", "register", "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code",
        "cr_await", "cr_origin", "ag_frame", "ag_code", "ag_await", "f_globals", "f_locals",
        "f_builtins", "f_back", "f_code", "f_trace", "tb_frame", "tb_next", "co_code",
        "co_consts", "co_names", "format", "format_map", "with_traceback", "cell_contents",
    }
)  # fmt: skip


class ModuleView:
    """A read-only stand-in for an allowed module: its listed exports and nothing else.

    Handing out the real module would leak whatever it imported (statistics.sys.modules
    reaches os); attribute writes are refused even from code that bypasses the guards
    (functools helpers run unguarded), so no mechanism can patch what another one calls.
    """

    __slots__ = ("_module_name", "_exports")

    def __init__(self, name: str, exports: dict[str, Any]) -> None:
        object.__setattr__(self, "_module_name", name)
        object.__setattr__(self, "_exports", types.MappingProxyType(dict(exports)))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._exports[key]
        except KeyError:
            raise AttributeError(f"module '{self._module_name}' has no attribute '{key}'") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise TypeError(f"module '{self._module_name}' is read-only in a mechanism")

    def __delattr__(self, key: str) -> None:
        raise TypeError(f"module '{self._module_name}' is read-only in a mechanism")

    def __dir__(self) -> list[str]:
        return sorted(self._exports)

    def __repr__(self) -> str:
        return f"<module '{self._module_name}'>"


class SeededRandom(random.Random):
    """random.Random that must be given a seed: seeding from the OS would break replay."""

    def __init__(self, x: Any) -> None:
        super().__init__(x)

    def seed(self, a: Any, version: int = 2) -> None:  # type: ignore[override]
        if a is None:
            raise ValueError("seed() needs a value in a mechanism (no OS entropy)")
        super().seed(a, version)


def _seed(a: Any, version: int = 2) -> None:
    if a is None:
        raise ValueError("random.seed() needs a value in a mechanism (no OS entropy)")
    random.seed(a, version)


_REPLACED = {("random", "seed"): _seed, ("random", "Random"): SeededRandom}


def _module_view(name: str) -> ModuleView:
    module = __import__(name)
    exports = {}
    for key in sorted(MODULE_EXPORTS[name]):
        if not hasattr(module, key):
            continue  # listed for another Python version
        value = _REPLACED.get((name, key), getattr(module, key))
        if isinstance(value, types.ModuleType) or isinstance(value, list | dict | set):
            continue  # no sub-modules and no shared mutable data
        exports[key] = value
    return ModuleView(name, exports)


_MODULE_VIEWS = {name: _module_view(name) for name in sorted(ALLOWED_MODULES)}


def _guarded_import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> ModuleView:
    if level != 0 or name not in _MODULE_VIEWS:
        raise ImportError(f"import of {name!r} is not allowed")
    return _MODULE_VIEWS[name]


_MISSING = object()


def _guarded_getattr(obj: Any, name: str, default: Any = _MISSING) -> Any:
    if name in DENIED_ATTRIBUTES:
        raise AttributeError(f"attribute '{name}' is not allowed in a mechanism")
    if default is _MISSING:
        return safer_getattr_raise(obj, name)
    return safer_getattr_raise(obj, name, default)


_VALUE_TYPES = (str, bytes, int, float, bool, type(None))


def _value_hash(value: Any) -> int:
    """hash() of values only: hashing an object gives its address, which differs per process."""
    if isinstance(value, tuple | frozenset):
        for item in value:
            _value_hash(item)
    elif not isinstance(value, _VALUE_TYPES):
        raise TypeError(f"hash() of {type(value).__name__} is not allowed in a mechanism")
    return hash(value)


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


# Builtins whose results differ between processes (addresses) or that reach internals.
DENIED_BUILTINS = ("setattr", "delattr", "id", "getattr", "vars", "type", "super")


def _builtins() -> dict[str, Any]:
    table = {k: v for k, v in safe_builtins.items() if k not in DENIED_BUILTINS}
    table.update(_EXTRA_BUILTINS)
    table["hash"] = _value_hash
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
        "_getattr_": _guarded_getattr,
        "_getitem_": _getitem,
        "_getiter_": iter,
        "_write_": _guarded_write,
        "_inplacevar_": _inplacevar,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_apply_": _apply,
        "_print_": _DiscardPrint,
    }
