"""A real OpenAI-compatible HTTP server on loopback, answering from a script (tests only).

Standard library only: a ThreadingHTTPServer in a background thread, bound to 127.0.0.1 on a free
port. It serves POST /v1/chat/completions and GET /v1/models. Each chat request is answered by
the *script*, a callable (request_json, call_index) -> Behaviour:

    ok(content_or_args)   a chat.completion; a dict (or a JSON string) becomes a function tool
                          call when the request carries `tools`, else the message content
    status(code, body)    an HTTP error (429, 500, 503, ...) with an OpenAI-style error body
    stall(seconds)        sleep before answering (past the client's timeout), then answer ok
    truncated()           a 200 whose JSON body is cut in the middle
    prose(text)           a 200 whose content is prose instead of JSON (never a tool call)
    empty_choices()       a 200 chat.completion with `choices: []`
    wrong_schema(obj)     valid JSON with the wrong fields (as content, or as tool-call args)

Every request is recorded (index, path, parsed body, the behaviour served) in `requests`.

    with OpenAIServer(script) as server:
        ... LLMSettings(provider=server.url, model="fake") ...
        server.requests
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Usage = tuple[int, int]  # (prompt_tokens, completion_tokens)


@dataclass(frozen=True)
class Behaviour:
    kind: str  # ok | status | stall | truncated | prose | empty | wrong_schema
    payload: Any = None  # content (str) or tool-call args (dict)
    code: int = 200
    body: Any = None
    seconds: float = 0.0
    usage: Usage | None = None  # overrides the server's usage for this reply


def ok(payload: Any, usage: Usage | None = None) -> Behaviour:
    return Behaviour("ok", payload=payload, usage=usage)


def status(code: int, body: Any = None) -> Behaviour:
    return Behaviour("status", code=code, body=body)


def stall(seconds: float, then: Any = "{}") -> Behaviour:
    return Behaviour("stall", payload=then, seconds=seconds)


def truncated(payload: Any = '{"changes": []}') -> Behaviour:
    return Behaviour("truncated", payload=payload)


def prose(text: str = "I would try a smaller learning rate and see what happens.") -> Behaviour:
    return Behaviour("prose", payload=text)


def empty_choices() -> Behaviour:
    return Behaviour("empty")


def wrong_schema(obj: dict[str, Any] | None = None) -> Behaviour:
    return Behaviour("wrong_schema", payload=obj or {"answer": 42, "explanation": "none"})


TRANSIENT_KINDS = ("status", "stall")  # what an OpenAI client retries (429/5xx, timeouts)
ERROR_TYPES = {
    400: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "service_unavailable",
}

Script = Callable[[dict[str, Any], int], Behaviour]


@dataclass
class Request:
    index: int
    method: str
    path: str
    body: Any
    behaviour: str = ""
    time: float = field(default_factory=time.monotonic)


def estimate_usage(request: dict[str, Any], content: str) -> Usage:
    """Roughly four characters a token, as the usage block of a real server reports."""
    prompt = sum(len(str(m.get("content") or "")) for m in request.get("messages") or [])
    return max(1, prompt // 4), max(1, len(content) // 4)


class OpenAIServer:
    """The server; a context manager. `url` is the base URL (http://127.0.0.1:PORT/v1)."""

    def __init__(
        self,
        script: Script,
        *,
        usage: Usage | Callable[[dict[str, Any], str], Usage] | None = None,
        model: str = "fake",
    ) -> None:
        self.script, self.model = script, model
        self.usage = usage or estimate_usage
        self.requests: list[Request] = []
        self.errors: list[str] = []  # exceptions inside the script or handler
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                server._get(self)

            def do_POST(self) -> None:  # noqa: N802
                server._post(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()  # wakes stalled handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not running"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- what was received -------------------------------------------------------------------

    def chat_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def served(self, kind: str) -> list[Request]:
        return [r for r in self.chat_requests() if r.behaviour == kind]

    # --- handlers ----------------------------------------------------------------------------

    def _record(self, method: str, path: str, body: Any) -> Request:
        with self._lock:
            index = sum(1 for r in self.requests if r.path.endswith("/chat/completions"))
            req = Request(index, method, path, body)
            self.requests.append(req)
            return req

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0].rstrip("/")
        self._record("GET", path, None)
        if path == "/v1/models":
            data = [{"id": self.model, "object": "model", "created": 0, "owned_by": "tests"}]
            self._send_json(h, 200, {"object": "list", "data": data})
        else:
            self._send_json(h, 404, error_body(404, f"no route GET {path}"))

    def _post(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0].rstrip("/")
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except json.JSONDecodeError:
            self._record("POST", path, raw.decode(errors="replace"))
            self._send_json(h, 400, error_body(400, "the request body is not JSON"))
            return
        req = self._record("POST", path, body)
        if path != "/v1/chat/completions":
            self._send_json(h, 404, error_body(404, f"no route POST {path}"))
            return
        try:
            behaviour = self.script(body, req.index)
        except Exception as exc:  # a broken script must fail the test, not hang the client
            self.errors.append(f"script failed on request {req.index}: {exc!r}")
            req.behaviour = "script_error"
            self._send_json(h, 400, error_body(400, f"test script failed: {exc!r}"))
            return
        req.behaviour = behaviour.kind
        try:
            self._answer(h, body, behaviour)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a stall past its timeout): that is the point

    def _answer(self, h: BaseHTTPRequestHandler, request: dict[str, Any], b: Behaviour) -> None:
        if b.kind == "status":
            body = b.body if b.body is not None else error_body(b.code)
            self._send_json(h, b.code, body)
            return
        if b.kind == "stall":
            if self._stop.wait(b.seconds):
                return
            self._send_json(h, 200, self.completion(request, b.payload, b.usage))
            return
        if b.kind == "truncated":
            text = json.dumps(self.completion(request, b.payload, b.usage))
            self._send_raw(h, 200, text[: len(text) // 2].encode())
            return
        if b.kind == "empty":
            reply = self.completion(request, "", b.usage)
            reply["choices"] = []
            self._send_json(h, 200, reply)
            return
        if b.kind == "prose":
            self._send_json(h, 200, self.completion(request, str(b.payload), b.usage, tools=False))
            return
        if b.kind in ("ok", "wrong_schema"):
            self._send_json(h, 200, self.completion(request, b.payload, b.usage))
            return
        raise ValueError(f"unknown behaviour {b.kind!r}")

    # --- replies -----------------------------------------------------------------------------

    def completion(
        self, request: dict[str, Any], payload: Any, usage: Usage | None, tools: bool = True
    ) -> dict[str, Any]:
        """A chat.completion object; payload becomes a tool call when the request has tools."""
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if tools and request.get("tools"):
            args = payload if isinstance(payload, str) else json.dumps(payload)
            message["tool_calls"] = [
                {
                    "id": f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": tool_name(request), "arguments": args},
                }
            ]
            finish = "tool_calls"
            content = args
        else:
            content = payload if isinstance(payload, str) else json.dumps(payload)
            message["content"] = content
        if usage is None:
            usage = self.usage(request, content) if callable(self.usage) else self.usage
        prompt_tokens, completion_tokens = usage
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model") or self.model,
            "system_fingerprint": "fp_tests",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _send_json(self, h: BaseHTTPRequestHandler, code: int, body: Any) -> None:
        self._send_raw(h, code, json.dumps(body).encode())

    @staticmethod
    def _send_raw(h: BaseHTTPRequestHandler, code: int, data: bytes) -> None:
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()


def tool_name(request: dict[str, Any]) -> str:
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("function", {}).get("name"):
        return choice["function"]["name"]
    return request["tools"][0]["function"]["name"]


def error_body(code: int, message: str | None = None) -> dict[str, Any]:
    kind = ERROR_TYPES.get(code, "api_error")
    return {
        "error": {
            "message": message or f"injected {code} ({kind})",
            "type": kind,
            "param": None,
            "code": kind,
        }
    }
