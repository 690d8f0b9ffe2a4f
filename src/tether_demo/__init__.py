"""The demo of Tether (``make demo``, ``python -m tether_demo``, ``tether demo``).

A package of its own, next to ``tether`` in the same distribution, using only the library's
public faces:

* :mod:`tether_demo.web`: the browser demo. This process serves ``demo.html`` with
  :func:`tether.web.serve_web`, which ships this package to the page (``packages=``); the
  page runs :mod:`tether_demo.page` in Pyodide and connects back. Both sides trace their
  messages with :class:`tether.trace.Trace`.
* :mod:`tether_demo.native`: the two-process demo (``--native``).
* :mod:`tether_demo.headless`: headless Chromium for pages that run Tether (the demo, the
  browser tests and the browser benchmark use it).

This package is also imported inside the page, so nothing here imports more than the
standard library at module level.
"""

from __future__ import annotations

# The demo's messages left out of both transcripts: the native side's commentary shown in the
# page ("note") and the garbage collector's batched releases.
UNTRACED = frozenset({"note", "release"})
