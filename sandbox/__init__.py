"""Run untrusted mechanism hooks in restricted, resource-limited worker processes."""

from bilevel.sandbox.policy import ALLOWED_MODULES, PolicyError, compile_mechanism, precheck
from bilevel.sandbox.pool import CallResult, InspectResult, SandboxPool
from bilevel.sandbox.validation import ValidationReport, validate_mechanism

__all__ = [
    "ALLOWED_MODULES",
    "CallResult",
    "InspectResult",
    "PolicyError",
    "SandboxPool",
    "ValidationReport",
    "compile_mechanism",
    "precheck",
    "validate_mechanism",
]
