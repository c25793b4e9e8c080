"""Typed search spaces: the knobs an inner loop may turn, each with its baseline default."""

from __future__ import annotations

import ast
import math
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

ParamKind = Literal["float", "logfloat", "int", "categorical"]
Value = float | int | str | bool
MAX_INT = 2**53  # beyond this an int has no exact float and no place in a search space


class SpaceError(ValueError):
    """A config that does not fit the search space; the message names the parameter."""


class Param(BaseModel):
    """One knob. Numeric kinds have [low, high]; categorical has choices."""

    name: str
    kind: ParamKind
    default: Value
    low: float | None = None
    high: float | None = None
    choices: list[Value] | None = None
    step: int | None = Field(None, ge=1, description="int: only low, low + step, ... are valid.")
    scale: Literal["linear", "log2"] = Field(
        "linear",
        description="int: log2 allows only default x 2^k (batch sizes, widths: the multiples "
        "the default has are kept).",
    )
    literal: bool = Field(
        False,
        description="categorical: each choice is a Python literal's source (None, (0.9, 0.95)), "
        "passed to the script as that literal.",
    )
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _pow2_is_log2(cls, data: Any) -> Any:
        """`pow2 = true` (spaces written before `scale`) is the log2 grid of a power of two."""
        if isinstance(data, dict) and "pow2" in data:
            data = dict(data)
            if data.pop("pow2"):
                data["scale"] = "log2"
        return data

    @model_validator(mode="after")
    def _check(self) -> Param:
        if self.kind == "categorical":
            if not self.choices or self.default not in self.choices:
                raise ValueError(f"{self.name}: categorical needs choices containing the default")
            if self.literal:
                for choice in self.choices:
                    python_literal(self.name, choice)
        else:
            if self.literal:
                raise ValueError(f"{self.name}: literal is for categorical parameters")
            if self.low is None or self.high is None or not self.low <= self.high:
                raise ValueError(f"{self.name}: numeric parameter needs low <= high")
            if self.kind == "logfloat" and self.low <= 0:
                raise ValueError(f"{self.name}: logfloat needs low > 0")
            if (self.step or self.scale != "linear") and self.kind != "int":
                raise ValueError(f"{self.name}: step and scale are for int parameters")
            if self.step and self.scale != "linear":
                raise ValueError(f'{self.name}: use step or scale = "log2", not both')
            if self.scale == "log2" and (self.low < 1 or not isinstance(self.default, int)
                                         or self.default < 1):  # fmt: skip
                raise ValueError(f"{self.name}: scale log2 needs low >= 1 and a default >= 1")
            self.check(self.default)
        return self

    def allowed(self) -> str:
        if self.kind == "categorical":
            return "one of " + ", ".join(repr(c) for c in self.choices or [])
        kind = "integer" if self.kind == "int" else "number"
        grid = ""
        if self.step:
            grid = f" in steps of {self.step}"
        elif self.scale == "log2":
            grid = f" of the form {self.default} x 2^k ({', '.join(map(str, self.grid()))})"
        return f"{kind} in [{self.low:g}, {self.high:g}]{grid}"

    def check(self, value: Any) -> Value:
        """Return the value in canonical type, or raise SpaceError naming the parameter."""
        if self.kind == "categorical":
            if value in (self.choices or []):
                return value
            raise SpaceError(f"{self.name}={value!r} is not allowed: expected {self.allowed()}")
        number = self._number(value)
        if not self.low <= number <= self.high:  # type: ignore[operator]
            raise SpaceError(f"{self.name}={value!r} is out of range: expected {self.allowed()}")
        if self.kind == "int" and self.snap(number) != number:
            raise SpaceError(f"{self.name}={value!r} is off its grid: expected {self.allowed()}")
        return number

    def grid(self) -> list[int]:
        """scale log2: the valid values, default x 2^k inside [low, high], ascending. Anchoring
        at the default keeps every divisor it has (768 -> 384, 1536: still a multiple of 12)."""
        base, low, high = int(self.default), int(self.low), int(self.high)  # type: ignore[arg-type]
        while base % 2 == 0 and base // 2 >= low:
            base //= 2
        values = []
        while base <= high:
            if base >= low:
                values.append(base)
            base *= 2
        return values

    def snap(self, number: int) -> int:
        """The nearest valid int: on the step grid, or the log2 grid, inside the range."""
        low, high = int(self.low), int(self.high)  # type: ignore[arg-type]
        if self.step:
            top = low + (high - low) // self.step * self.step
            return min(top, max(low, low + round((number - low) / self.step) * self.step))
        if self.scale == "log2":
            target = math.log2(max(number, 0.5))
            return min(self.grid(), key=lambda v: abs(math.log2(v) - target))
        return number

    def repair(self, value: Any) -> Value:
        """Clip a numeric value into range; categorical values cannot be repaired."""
        if self.kind == "categorical":
            return self.check(value)
        if self.kind == "int" and isinstance(value, float) and math.isfinite(value):
            value = round(value)  # snap to the integer grid (a mechanism may sample anywhere)
        number = self._number(value)
        number = min(max(number, self.low), self.high)  # type: ignore[type-var]
        return self.snap(int(round(number))) if self.kind == "int" else float(number)

    def _number(self, value: Any) -> float | int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpaceError(f"{self.name}={value!r} is not a number: expected {self.allowed()}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SpaceError(f"{self.name}={value!r} is not finite: expected {self.allowed()}")
        if isinstance(value, int) and abs(value) > MAX_INT:  # float() of it would overflow
            raise SpaceError(f"{self.name} is far out of range: expected {self.allowed()}")
        if self.kind == "int":
            if float(value) != int(value):
                raise SpaceError(
                    f"{self.name}={value!r} is not an integer: expected {self.allowed()}"
                )
            return int(value)
        return float(value)

    def neighbors(self, value: Any) -> list[Value]:
        """Canonical steps a person would try from value: /2 and x2, +-1 for ints, other choices."""
        if self.kind == "categorical":
            return [c for c in self.choices or [] if c != value]
        if self.kind == "int":
            d = self.step or 1
            raw: list[float] = [value // 2, value * 2]
            if self.scale == "linear":
                raw = [value - d, value + d, *raw]
        elif value == 0:
            raw = [self.low + 0.1 * (self.high - self.low)]  # type: ignore[operator]
        else:
            raw = [value / 2, value * 2]
        out: list[Value] = []
        for v in raw:
            clipped = self.repair(v)
            if clipped != value and clipped not in out:
                out.append(clipped)
        return out

    def unit(self, value: Any) -> float:
        """Position of value in [0, 1] (log scale for logfloat, index for categorical)."""
        if self.kind == "categorical":
            choices = self.choices or []
            return choices.index(value) / max(1, len(choices) - 1)
        low, high = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.kind == "logfloat" or self.scale == "log2":
            low, high, value = math.log(low), math.log(high), math.log(value)
        return 0.0 if high == low else (value - low) / (high - low)

    def from_unit(self, u: float) -> Value:
        """The value at position u in [0, 1] (the inverse of unit, rounded for ints)."""
        u = min(max(u, 0.0), 1.0)
        if self.kind == "categorical":
            choices = self.choices or []
            return choices[round(u * (len(choices) - 1))]
        low, high = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.kind == "logfloat" or self.scale == "log2":
            return self.repair(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
        return self.repair(low + u * (high - low))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.kind, "default": self.default}
        if self.kind == "categorical":
            data["choices"] = list(self.choices or [])
        else:
            data["low"], data["high"] = self.low, self.high
        if self.step:
            data["step"] = self.step
        if self.scale != "linear":
            data["scale"] = self.scale
        if self.literal:
            data["literal"] = True
        return data


class SearchSpace(BaseModel):
    """An ordered set of parameters; the order is the order a person would list them in."""

    params: list[Param] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> SearchSpace:
        names = [p.name for p in self.params]
        if len(names) != len(set(names)):
            raise ValueError("search space has duplicate parameter names")
        return self

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise SpaceError(f"unknown parameter {name!r}: expected one of {', '.join(self.names)}")

    def defaults(self) -> dict[str, Value]:
        return {p.name: p.default for p in self.params}

    def validate_changes(self, changes: dict[str, Any], repair: bool = False) -> dict[str, Value]:
        """Check (or clip, with repair=True) a partial config; unknown names always raise."""
        if not isinstance(changes, dict):
            raise SpaceError(f"a candidate must be a dict of parameter changes, got {changes!r}")
        out: dict[str, Value] = {}
        for name, value in changes.items():
            param = self[name]
            out[name] = param.repair(value) if repair else param.check(value)
        return out

    def validate(self, config: dict[str, Any], repair: bool = False) -> dict[str, Value]:
        """A full config: defaults filled in, every value checked."""
        return {**self.defaults(), **self.validate_changes(config, repair=repair)}

    def neighbors(self, config: dict[str, Any]) -> dict[str, list[Value]]:
        return {p.name: p.neighbors(config[p.name]) for p in self.params}

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {p.name: p.to_json() for p in self.params}

    @classmethod
    def from_json(cls, data: dict[str, dict[str, Any]]) -> SearchSpace:
        """The inverse of to_json (the space as hooks see it in ctx)."""
        return cls(
            params=[
                Param(
                    name=name,
                    kind=spec["type"],
                    default=spec["default"],
                    low=spec.get("low"),
                    high=spec.get("high"),
                    choices=spec.get("choices"),
                    step=spec.get("step"),
                    scale=spec.get("scale", "log2" if spec.get("pow2") else "linear"),
                    literal=spec.get("literal", False),
                )
                for name, spec in data.items()
            ]
        )


def python_literal(name: str, source: Any) -> Any:
    """The value of a literal choice's source text (`None`, `(0.9, 0.95)`), or raise naming it."""
    try:
        if not isinstance(source, str):
            raise ValueError
        return ast.literal_eval(source)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(
            f"{name}: with literal = true each choice is a Python literal as a string "
            f'("None", "(0.9, 0.95)"), got {source!r}'
        ) from None
