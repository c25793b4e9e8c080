"""The typed spine: each fact defined once (issue 12), checked from the code itself."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

from bilevel.config import ARM_SPECS, ARMS, LLMSettings, RunConfig
from bilevel.contract import CTX_KEYS, TRANSITIONS, Ctx, build_ctx
from bilevel.graphs.state import InputState

ROOT = Path(__file__).resolve().parents[2]
cli_run = importlib.import_module("bilevel.cli.run")
run_flags = importlib.import_module("bilevel.cli.run_flags")
PACKAGES = {"bilevel": "bilevel", "agents": "bilevel.agents", "graphs": "bilevel.graphs",
            "sandbox": "bilevel.sandbox", "objectives": "bilevel.objectives"}  # fmt: skip


def sources() -> dict[str, Path]:
    """Module name -> file, for every module of the package."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            out[name] = path
    return out


def imports(path: Path, modules: set[str], name: str) -> set[str]:
    """Project modules imported anywhere in the file (function-level imports included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            targets = [f"{base}.{node.module}" if node.module else base]
        else:
            continue
        out |= {t for t in targets if t in modules and t != name}
    return out


def test_no_import_cycle_even_through_function_level_imports():
    files = sources()
    graph = {name: imports(path, set(files), name) for name, path in files.items()}
    # a package's __init__ re-exporting its own submodules is not a cycle through the package
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_no_arm_name_is_compared_in_graphs():
    names = "|".join(re.escape(a) for a in ARMS)
    pattern = re.compile(rf"""(==|!=|\bin)\s*\(?\s*["']({names})["']|["']({names})["']\s*(==|!=)""")
    hits = [
        f"{path.name}:{i}: {line.strip()}"
        for path in (ROOT / "graphs").glob("*.py")
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) or re.search(r"""\[["']arm["']\]|\.arm\b""", line)
    ]
    assert not hits, hits


def test_arm_specs_cover_the_arm_literal_and_say_who_proposes():
    assert set(ARM_SPECS) == set(ARMS) == set(RunConfig.model_fields["arm"].annotation.__args__)
    assert not ARM_SPECS["inner"].outer and ARM_SPECS["full"].outer
    proposers = {s.proposer for s in ARM_SPECS.values()}
    assert proposers == {"researcher", "random", "tpe", "gp", "cmaes"}


def test_every_run_option_maps_to_a_config_field_through_the_one_table():
    params = inspect.signature(cli_run.run).parameters
    table, derived, run_only = (
        run_flags.RUN_OPTIONS,
        run_flags.DERIVED_OPTIONS,
        run_flags.RUN_ONLY_OPTIONS,
    )
    assert set(params) == set(table) | set(derived) | run_only  # every flag is accounted for
    assert not (set(table) & set(derived)) and not (set(table) | set(derived)) & run_only
    fields = set(RunConfig.model_fields) | {f"llm.{f}" for f in LLMSettings.model_fields}
    reached = set(table.values()) | set(derived.values()) | {"llm", "llm.seed"}  # seed: --seed
    assert set(table.values()) | set(derived.values()) <= fields
    assert fields == reached, f"fields no flag sets: {sorted(fields - reached)}"
    for flag, field in table.items():  # one default: the CLI's is the field's
        model = LLMSettings if field.startswith("llm.") else RunConfig
        default = model.model_fields[field.removeprefix("llm.")].default
        assert params[flag].default == default, (flag, params[flag].default, default)


def test_the_graph_input_is_derived_from_run_config():
    aliases = {"cycle", "slots"}  # older names RunConfig still accepts
    assert set(InputState.__annotations__) == set(RunConfig.model_fields) | {"run_dir"} | aliases


def test_ctx_keys_come_from_the_one_definition_and_ctx_is_built_in_one_place():
    assert CTX_KEYS == tuple(Ctx.__annotations__)
    builders = []
    for folder in PACKAGES:
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            if re.search(r"""["']evaluations_left["']\s*:""", text):
                builders.append(path.relative_to(ROOT).as_posix())
    assert builders == ["bilevel/contract.py"]
    assert "def build_ctx" in inspect.getsource(build_ctx)


def test_mechanism_statuses_and_transitions():
    from bilevel.contract import MechanismStatus, new_mechanism, with_status

    statuses = set(MechanismStatus.__args__)
    assert set(TRANSITIONS) == statuses
    assert all(set(t) <= statuses for t in TRANSITIONS.values())
    cand = new_mechanism("c1-x", "x", "candidate", parent="default")
    assert with_status(with_status(cand, "validated"), "probation")["status"] == "probation"
    try:
        with_status(cand, "adopted")
    except ValueError as exc:
        assert "candidate -> adopted" in str(exc)
    else:
        raise AssertionError("a candidate cannot be adopted without validation and probation")


def test_the_cli_imports_no_heavy_library_until_a_command_needs_it():
    """`bilevel --help` and a one-line error must start fast: no torch, LangGraph or LLM client
    at import (benchmarks/startup.py prints the CPU time)."""
    import subprocess
    import sys

    code = (
        "import sys, bilevel.cli\n"
        "print(sorted(m for m in ('torch', 'langgraph', 'openai', 'langchain_core', 'optuna')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
