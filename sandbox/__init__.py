"""Run untrusted mechanism hooks in restricted, resource-limited worker processes.

Public names are imported lazily: the worker process imports only what it runs (the policy and
the OS layers), so starting one -- once per mechanism -- stays cheap.
"""

from __future__ import annotations

from bilevel import lazy_exports

_EXPORTS = {
    "ALLOWED_MODULES": "bilevel.sandbox.policy",
    "PolicyError": "bilevel.sandbox.policy",
    "compile_mechanism": "bilevel.sandbox.policy",
    "precheck": "bilevel.sandbox.policy",
    "CallResult": "bilevel.sandbox.pool",
    "InspectResult": "bilevel.sandbox.pool",
    "SandboxPool": "bilevel.sandbox.pool",
    "ValidationReport": "bilevel.sandbox.validation",
    "validate_mechanism": "bilevel.sandbox.validation",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports("bilevel.sandbox", _EXPORTS)
