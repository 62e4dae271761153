"""A scripted OpenAI-compatible chat endpoint on 127.0.0.1, for the faults a real server
cannot be made to show on demand (401, 404, images rejected, slow answers, 5xx, a stream
cut short) and for answers with chosen citation markers. The real server
(``transformers serve``, the ``vlm_server`` fixture) is tested beside it.

Behaviour by the request's ``model``:

* ``good``: answers ``reply`` (whole or streamed, with usage).
* ``text-only``: 400 with an OpenAI error about images if the request holds an image.
* ``slow``: waits ``delay`` seconds before answering (streamed: between pieces).
* ``broken``: 500 with an OpenAI error body.
* ``cut``: streams two pieces, then closes the connection mid-answer.
* ``error-event``: streams one piece, then an SSE ``error`` event (a 5xx inside a 200 stream).
* anything else: 404 ``model_not_found``.

With ``down_after`` set, the endpoint answers that many chat requests, then 503 to
every later one (a server that dies midway through a run).

A request without ``Authorization: Bearer <key>`` (when ``key`` is set) gets 401.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeLLM:
    url: str
    reply: str = "A cat sits on a chair [2]."
    key: str | None = None
    delay: float = 0.0
    down_after: int | None = None
    answered: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: FakeLLM


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str) -> None:
        self._json(status, {"error": {"message": message, "type": code, "code": code}})

    def do_GET(self) -> None:
        if self.path.endswith("/models"):
            ids = ["good", "text-only", "slow", "broken", "cut", "error-event"]
            self._json(200, {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})
        else:
            self._error(404, "no such route", "not_found")

    def do_POST(self) -> None:
        state = self.server.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        state.requests.append({"body": body, "authorization": self.headers.get("Authorization")})
        if state.key is not None and self.headers.get("Authorization") != f"Bearer {state.key}":
            self._error(401, "Incorrect API key provided", "invalid_api_key")
            return
        if state.down_after is not None and state.answered >= state.down_after:
            self._error(503, "The server is overloaded or not ready yet.", "server_error")
            return
        model = body.get("model")
        has_image = any(
            isinstance(part, dict) and part.get("type") == "image_url"
            for message in body.get("messages", [])
            if isinstance(message.get("content"), list)
            for part in message["content"]
        )
        if model == "text-only" and has_image:
            self._error(400, "This model does not support image inputs.", "invalid_request")
            return
        if model == "broken":
            self._error(500, "The server had an error while processing your request.", "server")
            return
        if model not in {"good", "text-only", "slow", "cut", "error-event"}:
            self._error(404, f"The model `{model}` does not exist.", "model_not_found")
            return
        if model == "slow" and not body.get("stream"):
            time.sleep(state.delay)
        state.answered += 1
        if body.get("stream"):
            self._stream(model, state)
            return
        self._json(
            200,
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": state.reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            },
        )

    def _chunk(self, model: str, delta: dict[str, Any], **extra: Any) -> bytes:
        payload = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            **extra,
        }
        return f"data: {json.dumps(payload)}\n\n".encode()

    def _stream(self, model: str, state: FakeLLM) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if model != "cut":
            self.send_header("Connection", "close")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        words = state.reply.split(" ")
        pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
        if model == "cut":
            for piece in pieces[:2]:
                send(self._chunk(model, {"content": piece}))
            # Close without the terminating chunk: the answer is cut short.
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        if model == "error-event":
            send(self._chunk(model, {"content": pieces[0]}))
            send(b'data: {"error": {"message": "upstream worker crashed", "code": 503}}\n\n')
            send(b"")
            return
        for piece in pieces:
            if model == "slow":
                time.sleep(state.delay)
            send(self._chunk(model, {"content": piece}))
        usage = {"prompt_tokens": 11, "completion_tokens": len(pieces), "total_tokens": 0}
        payload = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": model}
        payload.update({"choices": [], "usage": usage})
        send(f"data: {json.dumps(payload)}\n\n".encode())
        send(b"data: [DONE]\n\n")
        send(b"")


def start_fake_llm(**options: Any) -> tuple[FakeLLM, _Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    server.state = FakeLLM(url=f"http://127.0.0.1:{port}/v1", **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.state, server
