"""``python -m tether_demo`` (also ``tether demo``): the browser demo, or with ``--native`` the
two-process demo.

``make demo`` runs it: this process serves a page on http://127.0.0.1:8765/ whose Python
(Pyodide) messages this process's objects and back; on a machine with no display it runs the
page in headless Chromium itself and prints the transcript, then serves on. See
:mod:`tether_demo.web`; ``--native`` runs :mod:`tether_demo.native` instead.
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = "The Tether demo: a browser page and this process messaging each other's objects."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the demo."""
    parser.add_argument(
        "--port", type=int, default=None, help="port (default 8765; with --native any free one; 0 picks a free one)"
    )
    parser.add_argument("--once", action="store_true", help="exit after the scripted conversation")
    browser = parser.add_mutually_exclusive_group()
    browser.add_argument(
        "--headless", action="store_true", help="run the page in headless Chromium even on a machine with a display"
    )
    browser.add_argument(
        "--no-browser", action="store_true", help="do not start Chromium: wait for you to open the page"
    )
    parser.add_argument(
        "--native", action="store_true", help="the native demo instead: a server process and a client process"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo the parsed options ask for."""
    if args.native:
        from .native import main as native_main

        return native_main(port=args.port or 0)
    from .web import DEFAULT_PORT
    from .web import main as web_main

    port = DEFAULT_PORT if args.port is None else args.port
    return web_main(port, headless=args.headless, no_browser=args.no_browser, once=args.once)


def main(argv: list[str] | None = None, prog: str = "python -m tether_demo") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
