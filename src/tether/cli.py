"""The ``tether`` command line.

``tether serve MODULE:OBJECT [--host H] [--port P]`` exposes an object (or a factory called
with each new peer) importable as ``MODULE:OBJECT``. ``tether shell URL`` opens a Python
console with ``peer`` and ``root`` bound. ``tether demo`` runs the demo (``--native``: the
two-process one), which is the ``tether_demo`` package (``python -m tether_demo``). ``tether
info`` says the version, which codec runs (compiled with mypyc, or pure Python) and the Python.

A token is read from ``$TETHER_TOKEN`` or ``--token-file`` (never from the command line, which
other users of the machine can see); TLS needs ``--certfile`` and ``--keyfile`` to serve and
``--cafile`` to trust a private certificate authority in the shell.
"""

from __future__ import annotations

import argparse
import code
import errno
import importlib
import os
import platform
import signal
import ssl
import sys
from typing import Any

from . import __version__
from .websocket import DEFAULT_PORT

__all__ = [
    "cmd_demo", "cmd_info", "cmd_serve", "cmd_shell", "load_object", "main", "read_token", "server_options",
    "server_ssl",
]


def load_object(spec: str) -> Any:
    """Import ``MODULE:OBJECT`` (the object part may be dotted) and return the object."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"tether: expected MODULE:OBJECT (like mypkg.service:root), got {spec!r}")
    sys.path.insert(0, "")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"tether: cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"tether: {module_name!r} has no attribute {attr!r}") from None
    return obj


def read_token(args: argparse.Namespace) -> str | None:
    """The token of ``--token-file`` (its first line), else ``$TETHER_TOKEN``, else None."""
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.readline().strip()
        except OSError as exc:
            raise SystemExit(f"tether: cannot read the token file: {exc}") from None
        if not token:
            raise SystemExit(f"tether: the token file {args.token_file} is empty")
        return token
    return os.environ.get("TETHER_TOKEN") or None


def server_ssl(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.certfile and not args.keyfile:
        return None
    if not args.certfile or not args.keyfile:
        raise SystemExit("tether: TLS needs both --certfile and --keyfile")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.certfile, args.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"tether: cannot load the certificate: {exc}") from None
    return context


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options ``tether serve`` passes to every kind of server."""
    return dict(
        trusted=args.trusted,
        send_tracebacks=args.tracebacks,
        max_frame_size=args.max_frame_size,
        max_connections=args.max_connections,
        accept_code=args.accept_code,
        token=read_token(args),
        origins=args.origin or None,
        ssl=server_ssl(args),
        keepalive=args.keepalive or None,
        debug=args.debug,
        handoff=args.handoff,
        advertise=args.advertise if args.advertise else True,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from .sync.server import serve

    root = load_object(args.object)
    if args.web:
        return _serve_web(root, args)
    try:
        server = serve(root, host=args.host, port=args.port, **server_options(args))
    except OSError as exc:
        raise SystemExit(_listen_error(args, exc)) from None
    print(f"tether: serving {args.object} on {server.url}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.close())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def _serve_web(root: Any, args: argparse.Namespace) -> int:
    import asyncio

    try:
        from .web import serve_web
    except ImportError as exc:
        raise SystemExit(f"tether: --web needs the web extra (pip install 'tether[web]'): {exc}") from None

    async def run() -> None:
        async with serve_web(root, args.host, args.port, **server_options(args)) as server:
            print(f"tether: serving {args.object} on {server.ws_url} and the page on {server.url}", flush=True)
            await server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise SystemExit(_listen_error(args, exc)) from None
    return 0


def _listen_error(args: argparse.Namespace, exc: OSError) -> str:
    why = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = " (another server is using it: pick another --port, or --port 0 for a free one)"
    return f"tether: cannot listen on {args.host}:{args.port}: {why}" + (hint if exc.errno == errno.EADDRINUSE else "")


def cmd_shell(args: argparse.Namespace) -> int:
    import tether

    from .sync.client import connect

    context = None
    if args.cafile:
        context = ssl.create_default_context(cafile=args.cafile)
    with connect(args.url, token=read_token(args), ssl=context, debug=args.debug) as peer:
        banner = (
            f"Tether shell connected to {args.url}\n"
            "  root  - proxy to the server's root object (try dir(root))\n"
            "  peer  - the connection (peer.stats(), peer.close())"
        )
        code.interact(banner=banner, local={"peer": peer, "root": peer.root, "tether": tether}, exitmsg="")
    return 0


def cmd_demo(args: argparse.Namespace, argv: list[str]) -> int:
    """``tether demo [OPTIONS]``: the demo, which is the ``tether_demo`` package (``python -m
    tether_demo``, the same options); ``argv`` are the options, parsed there."""
    try:
        from tether_demo.__main__ import main as demo_main
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "tether_demo":
            raise
        raise SystemExit("tether: the demo is not installed (no tether_demo package; it ships with tether's sources)") from None
    return demo_main(argv, prog="tether demo")


def cmd_info(args: argparse.Namespace) -> int:
    """``tether info``: the version, the codec in use (where it was imported from) and the Python."""
    from . import codec

    print(f"tether {__version__}")
    how = codec.implementation()
    if how == "pure Python" and platform.python_implementation() == "CPython" and sys.platform != "emscripten":
        how += " (the compiled codec is not installed: no C compiler or Python headers at install time?)"
    print(f"codec: {how}")
    print(f"codec module: {codec.__file__}")
    print(f"python: {platform.python_implementation()} {platform.python_version()} on {sys.platform}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tether", description="Remote messaging between live Python objects.")
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="expose MODULE:OBJECT over a WebSocket")
    serve.add_argument("object", help="MODULE:OBJECT, an object or a factory called with each peer")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks one)")
    serve.add_argument("--trusted", action="store_true", help="let peers reach private (_underscore) names")
    serve.add_argument("--tracebacks", action="store_true", help="send remote tracebacks to clients")
    serve.add_argument(
        "--accept-code", action="store_true", help="define classes and functions clients send by value (runs their code)"
    )
    serve.add_argument("--web", action="store_true", help="also serve the browser page on the same port (needs tether[web])")
    serve.add_argument("--max-frame-size", type=int, default=16 * 1024 * 1024, help="largest frame in bytes")
    serve.add_argument(
        "--max-connections", type=int, default=1024,
        help="connections open or opening at once (default 1024); one more is answered with HTTP 503",
    )  # fmt: skip
    serve.add_argument("--token-file", help="require the token in this file's first line (default: $TETHER_TOKEN)")
    serve.add_argument(
        "--origin", action="append", help="admit browser pages of this origin (repeatable; '*' for any)"
    )
    serve.add_argument("--certfile", help="serve wss:// (https:// with --web) with this certificate chain (PEM)")
    serve.add_argument("--keyfile", help="the private key of --certfile (PEM)")
    serve.add_argument(
        "--keepalive", type=float, default=20.0, help="seconds between pings; a client silent twice that long is dropped (0: no pings)"
    )
    serve.add_argument(
        "--debug", action="store_true",
        help="offer remote debugging to clients that ask for it (they are then trusted: give it only to yourself)",
    )  # fmt: skip
    serve.add_argument(
        "--advertise", metavar="URL",
        help="the ws:// URL other machines reach this server at, told to peers so they can be introduced to it "
        "(default: the bound address, none when bound to all interfaces)",
    )  # fmt: skip
    serve.add_argument(
        "--handoff", choices=("direct", "forward"), default="direct",
        help="hand off proxies of other connections to their owners (direct, the default) or forward every call",
    )  # fmt: skip
    serve.set_defaults(func=cmd_serve)

    shell = sub.add_parser("shell", help="interactive console connected to URL")
    shell.add_argument("url", help="ws://HOST:PORT (or wss://) of a tether server")
    shell.add_argument("--token-file", help="the server's token, in this file's first line (default: $TETHER_TOKEN)")
    shell.add_argument("--cafile", help="trust this certificate authority (PEM) for wss://")
    shell.add_argument(
        "--debug", action="store_true", help="ask for remote debugging (tether.post_mortem, breakpoints in handlers)"
    )
    shell.set_defaults(func=cmd_shell)

    info = sub.add_parser("info", help="print the version, the codec in use (compiled or pure Python) and the Python")
    info.set_defaults(func=cmd_info)

    # The demo's options are those of python -m tether_demo, parsed there (see cmd_demo).
    demo = sub.add_parser(
        "demo", help="run the demo: a browser page and this process messaging each other", add_help=False
    )
    demo.set_defaults(func=cmd_demo)

    args, rest = parser.parse_known_args(argv)
    if args.func is cmd_demo:
        return cmd_demo(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
