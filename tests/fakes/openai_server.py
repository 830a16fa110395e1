"""A small fake OpenAI-compatible HTTP server for offline tests.

It speaks just enough of the API for the official ``openai`` client (and anything
built on it, such as llama-index's ``OpenAILike``) to run unchanged against it:

* ``POST /v1/chat/completions`` – JSON, or SSE when ``stream`` is true (text deltas,
  then a ``usage`` chunk when ``stream_options.include_usage`` is set, then ``[DONE]``);
* ``POST /v1/embeddings`` – deterministic vectors from a hash of each input text
  (not normalised, so callers' normalisation is exercised), float or base64 encoded;
* ``GET /v1/models``.

Behaviour is scriptable per request through a FIFO queue; with nothing queued the
``responder`` function produces the reply:

>>> with FakeOpenAIServer(api_key="sk-test") as server:            # doctest: +SKIP
...     server.enqueue(status=429)                   # first request: rate limited
...     server.enqueue(reply="答案[1]。")             # second request: this reply
...     server.enqueue(delay=5.0)                    # third: answer only after 5 s
...     server.responder = lambda req: "默认回答[1]。"  # every later request
...     client = OpenAI(base_url=server.base_url, api_key="sk-test")

Misbehaviours, per request: ``finish_reason="length"`` (or None: no finish reason at
all), ``done=False`` (no ``[DONE]``), ``break_after=n`` (the connection drops after n
text chunks, mid-body), ``delay``/``chunk_delay`` (slow).  ``echo_key_in_errors`` makes
every error message echo the caller's key, whole and partly, as careless servers do.

Every request is recorded in ``server.requests``.  Error responses carry a
``retry-after-ms`` header (``default_retry_after_ms``, 1 ms) unless the behaviour sets
its own retry header, so the openai client's backoff does not slow tests down.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Responder = Callable[[dict[str, Any]], str]

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", None),
    409: ("conflict", None),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
}


def default_responder(request_json: dict[str, Any]) -> str:
    """The reply when nothing is queued: fixed, cited, Chinese."""
    return "这是测试回答[1]。"


@dataclass(frozen=True)
class Behaviour:
    """What the server does for one request.

    ``status`` other than 200 answers with an OpenAI-style error body (or ``body``);
    ``reply`` overrides the responder; ``usage`` overrides the computed token counts;
    ``delay`` sleeps before answering; ``chunk_delay`` sleeps after each streamed text chunk;
    ``finish_reason`` is the one sent (None: none at all); ``done`` False leaves out the
    closing ``[DONE]``; ``break_after`` drops the connection after that many text chunks.
    """

    status: int = 200
    reply: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    body: dict[str, Any] | None = None
    usage: dict[str, int] | None = None
    finish_reason: str | None = "stop"
    done: bool = True
    break_after: int | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


def fake_embedding(text: str, dim: int) -> list[float]:
    """Deterministic pseudo-random vector in [-1, 1)^dim from a hash of ``text``."""
    out: list[float] = []
    counter = 0
    while len(out) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend(v / 2**31 for v in struct.unpack("<8i", digest))
        counter += 1
    return out[:dim]


def _count(text: str) -> int:
    """A crude, deterministic token count: one per character (good enough to assert on)."""
    return len(text)


class FakeOpenAIServer:
    """Fake OpenAI-compatible server on ``127.0.0.1`` (an ephemeral port), in a thread.

    ``api_key``: when set, requests must carry ``Authorization: Bearer <api_key>``
    (401 otherwise).  ``models``: when set, other model names get a 404
    ``model_not_found``; ``GET /v1/models`` lists them.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: list[str] | None = None,
        embedding_dim: int = 32,
        responder: Responder = default_responder,
        stream_piece_chars: int = 3,
        reverse_embeddings: bool = False,
    ) -> None:
        self.api_key = api_key
        self.models = models
        self.embedding_dim = embedding_dim
        self.responder = responder
        self.stream_piece_chars = stream_piece_chars
        self.reverse_embeddings = reverse_embeddings  # return data items in reverse order
        self.default_retry_after_ms: float | None = 1.0
        self.report_usage = True  # False: like servers that send no usage at all
        self.echo_key_in_errors = False  # True: error messages repeat the caller's key (careless servers)
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._stopping.clear()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-openai",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping on a ``delay``
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running; call start() first")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url``: ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # --- scripting ---------------------------------------------------------------

    def enqueue(
        self,
        *,
        status: int = 200,
        reply: str | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        body: dict[str, Any] | None = None,
        usage: dict[str, int] | None = None,
        finish_reason: str | None = "stop",
        done: bool = True,
        break_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Queue a behaviour for the next request(s) (``times`` copies)."""
        b = Behaviour(status=status, reply=reply, headers=dict(headers or {}), delay=delay,
                      chunk_delay=chunk_delay, body=body, usage=usage, finish_reason=finish_reason, done=done,
                      break_after=break_after)
        with self._lock:
            self._queue.extend([b] * times)

    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else Behaviour()

    @property
    def pending(self) -> int:
        """Queued behaviours not consumed yet."""
        with self._lock:
            return len(self._queue)

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queue.clear()


def error_body(message: str, status: int, code: str | None = None) -> dict[str, Any]:
    etype, default_code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "api_error", None))
    return {"error": {"message": message, "type": etype, "param": None, "code": code or default_code}}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output quiet
        pass

    # --- plumbing ------------------------------------------------------------------

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(self, status: int, message: str, code: str | None = None,
                    behaviour: Behaviour | None = None) -> None:
        headers = dict(behaviour.headers) if behaviour else {}
        lower = {k.lower() for k in headers}
        retry_ms = self.fake.default_retry_after_ms
        if retry_ms is not None and not lower & {"retry-after", "retry-after-ms"}:
            headers["retry-after-ms"] = str(retry_ms)
        body = behaviour.body if behaviour and behaviour.body is not None else None
        if self.fake.echo_key_in_errors:
            key = self.headers.get("Authorization", "").removeprefix("Bearer ")
            message += f" Key used: {key}. Did you mean {key[:8]}...{key[-6:]}? ({key[3:14]})"
            body = None
        self._send_json(status, body or error_body(message, status, code), headers)

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {"_unparsed": raw.decode("utf-8", "replace")}

    def _handle(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        payload = self._read_json() if method == "POST" else None
        self.fake._record(RecordedRequest(method=method, path=path,
                                          headers={k.lower(): v for k, v in self.headers.items()},
                                          json=payload))
        b = self.fake._next_behaviour()
        if b.delay and self.fake._stopping.wait(b.delay):
            return  # server shutting down
        # A client that gave up (timeout) has closed the socket: nothing to answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._dispatch(method, path, payload, b)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # --- routes --------------------------------------------------------------------

    def _dispatch(self, method: str, path: str, payload: Any, b: Behaviour) -> None:
        if b.status != 200:
            self._send_error(b.status, f"Fake error {b.status}.", behaviour=b)
            return
        if not self._authorised():
            # Like OpenAI: the body names the problem, never the full key.
            self._send_error(401, "Incorrect API key provided. You can find your API key in your "
                                  "account settings.", "invalid_api_key", b)
            return
        route = (method, path)
        if route == ("GET", "/v1/models"):
            models = self.fake.models or ["fake-model"]
            self._send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in models]})
            return
        if method == "POST" and path in ("/v1/chat/completions", "/v1/embeddings"):
            if not isinstance(payload, dict):
                self._send_error(400, "The request body must be a JSON object.", behaviour=b)
                return
            model = payload.get("model")
            if self.fake.models is not None and model not in self.fake.models:
                self._send_error(404, f"The model `{model}` does not exist or you do not have access "
                                      "to it.", "model_not_found", b)
                return
            if path == "/v1/embeddings":
                self._embeddings(payload, b)
            elif payload.get("stream"):
                self._chat_stream(payload, b)
            else:
                self._chat(payload, b)
            return
        self._send_error(404, f"Unknown route {method} {path}.", "unknown_url", b)

    def _authorised(self) -> bool:
        if self.fake.api_key is None:
            return True
        return self.headers.get("Authorization", "") == f"Bearer {self.fake.api_key}"

    def _reply_and_usage(self, payload: dict[str, Any], b: Behaviour) -> tuple[str, dict[str, int]]:
        reply = b.reply if b.reply is not None else self.fake.responder(payload)
        prompt = sum(_count(str(m.get("content") or "")) for m in payload.get("messages") or [])
        usage = b.usage or {"prompt_tokens": prompt, "completion_tokens": _count(reply)}
        usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        return reply, usage

    def _chat(self, payload: dict[str, Any], b: Behaviour) -> None:
        reply, usage = self._reply_and_usage(payload, b)
        self._send_json(200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": payload.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                         "finish_reason": b.finish_reason, "logprobs": None}],
            **({"usage": usage} if self.fake.report_usage else {}),
        }, b.headers)

    def _pieces(self, text: str) -> Iterator[str]:
        n = max(1, self.fake.stream_piece_chars)
        for i in range(0, len(text), n):
            yield text[i : i + n]

    def _chat_stream(self, payload: dict[str, Any], b: Behaviour) -> None:
        reply, usage = self._reply_and_usage(payload, b)
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": payload.get("model")}

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        chunks = [choice({"role": "assistant", "content": ""})]
        chunks += [choice({"content": p}) for p in self._pieces(reply)]
        if b.finish_reason is not None:
            chunks.append(choice({}, b.finish_reason))
        if include_usage and self.fake.report_usage:
            chunks.append({**base, "choices": [], "usage": usage})

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        if b.break_after is not None:
            # Promise a body that never comes: the client sees the connection drop mid-body.
            self.send_header("Content-Length", "10000000")
        for k, v in b.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.close_connection = True  # no Content-Length: the body ends when the socket closes
        sent = 0
        for c in chunks:
            self.wfile.write(f"data: {json.dumps(c, ensure_ascii=False)}\n\n".encode())
            self.wfile.flush()
            has_text = bool(c["choices"] and c["choices"][0]["delta"].get("content"))
            sent += has_text
            if b.break_after is not None and sent >= b.break_after:
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if has_text and b.chunk_delay and self.fake._stopping.wait(b.chunk_delay):
                return
        if b.done:
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    def _embeddings(self, payload: dict[str, Any], b: Behaviour) -> None:
        inputs = payload.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        if not texts or not all(isinstance(t, str) for t in texts):
            self._send_error(400, "'input' must be a string or a list of strings.", behaviour=b)
            return
        dim = int(payload.get("dimensions") or self.fake.embedding_dim)
        as_base64 = payload.get("encoding_format") == "base64"
        data = []
        for i, t in enumerate(texts):
            vec = fake_embedding(t, dim)
            emb: Any = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode() if as_base64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        if self.fake.reverse_embeddings:
            data.reverse()
        tokens = sum(_count(t) for t in texts)
        self._send_json(200, {"object": "list", "data": data, "model": payload.get("model"),
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}, b.headers)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A running :class:`FakeOpenAIServer` (no key check, any model), stopped afterwards.

    Configure it in the test: ``fake_openai.api_key = "sk-x"``, ``fake_openai.models = [...]``.
    """
    with FakeOpenAIServer() as server:
        yield server
