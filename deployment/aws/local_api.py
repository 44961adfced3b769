"""A local stand-in for API Gateway's HTTP API in front of the Lambda function.

    python deployment/aws/local_api.py --port 9000          # then: POST http://127.0.0.1:9000/predict
    python deployment/aws/local_api.py --model deployment/maskdetect.h5 --port 0   # any model; a free port

Each HTTP request becomes the event an HTTP API sends (payload format 2.0: version, routeKey,
rawPath, headers, requestContext.http.method, body, isBase64Encoded...), built by
``maskdetect.aws.handler.http_api_event``; ``lambda_function.lambda_handler`` answers it in this
process, as in one warm Lambda container, and its statusCode, headers and body become the HTTP
answer. It lets the handler and ``deployment/test_aws_api.ipynb`` run end to end without AWS.

Not emulated: TLS, API Gateway's own answers (a real API with only the ``POST /predict`` route
answers other routes itself with 404 ``{"message":"Not Found"}``; here the handler answers them),
its 10 MB request and Lambda's 6 MB event limits, the 30 s integration timeout and throttling.
The model: ``--model``, else $MODEL_PATH, else the checkout's ``deployment/maskdetect.tflite``.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Context:
    """The parts of Lambda's context object a handler reads."""

    function_name = "maskdetect-local"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def make_handler(lambda_handler, http_api_event):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "maskdetect-local-api"

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _answer(self):
            event = http_api_event(
                self.command,
                self.path,
                dict(self.headers.items()),
                self._body(),
                source_ip=self.client_address[0],
                host=self.headers.get("Host", "localhost"),
            )
            response = lambda_handler(event, Context())
            body = response.get("body") or ""
            if response.get("isBase64Encoded"):
                data = base64.b64decode(body)
            else:
                data = body.encode("utf-8")
            self.send_response(int(response.get("statusCode", 200)))
            for name, value in (response.get("headers") or {}).items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _answer

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port (default 9000; 0: any free port)")
    parser.add_argument("--model", help="the model file (default $MODEL_PATH, else deployment/maskdetect.tflite)")
    args = parser.parse_args(argv)
    if args.model:
        os.environ["MODEL_PATH"] = str(Path(args.model).resolve())
    sys.path.insert(0, str(HERE))
    from maskdetect.aws.handler import MODEL_FILE, http_api_event
    from maskdetect.settings import Settings

    os.environ.setdefault("MODEL_PATH", str(Settings.from_env().deployment_dir / MODEL_FILE))
    import lambda_function  # noqa: E402 - after MODEL_PATH is settled

    if not lambda_function.app.warm_up():  # as Lambda's init phase: load the model before the first request
        print("local_api.py: no usable model (see the line above); pass --model FILE or set MODEL_PATH", file=sys.stderr)
        return 1
    server = ThreadingHTTPServer((args.host, args.port), make_handler(lambda_function.lambda_handler, http_api_event))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(f"local API Gateway stand-in: POST http://{host}:{port}/predict (model {os.environ['MODEL_PATH']})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
