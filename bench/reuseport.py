"""How the FastAPI anchors of bench/serve.sh and bench/serve_raw.sh are deployed: `workers`
processes, each with its own listening socket on the same port (SO_REUSEPORT), so the kernel spreads
connections over them (uvicorn's own `--workers` mostly leaves one idle)."""

import os
import socket

import uvicorn


def serve(app, port: int) -> None:
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and without it every keep-alive answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


def run(app, port: int, workers: int) -> None:
    """Serves `app` on 127.0.0.1:`port` from `workers` processes (this one and forks)."""
    for _ in range(workers - 1):
        if os.fork() == 0:
            serve(app, port)
            os._exit(0)
    serve(app, port)
