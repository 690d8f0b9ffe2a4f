"""The native demo's step 6 (``python -m tether_demo --native``): on a connection where both
sides ask for debugging, a remote error's traceback reads like a local one, and a post-mortem
runs in the server with commands typed on the client's side."""

from __future__ import annotations

from .test_command import run


def test_the_native_demo_shows_a_remote_traceback_read_like_a_local_one() -> None:
    out = run("-m", "tether_demo", "--native", timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    step = out.stdout.split("6. the same error with debugging on: connect(url, debug=True)", 1)[1]
    assert "     | Traceback (most recent call last):" in step
    assert 'in _debugging\n     |     peer.root.author("Dune")' in step
    assert '     |   File "<remote ws://127.0.0.1:' in step and 'tether_demo/native.py>", line ' in step
    assert "in author\n     |     return self.shelf[title]" in step
    assert "     | KeyError: 'Dune'" in step
    assert "(Pdb) p title\n'Dune'" in step
    assert "(Pdb) p sorted(self.shelf)\n['SICP', 'Smalltalk-80']" in step
    # The first connection did not ask: it stayed a stranger (step 5 was refused).
    assert "lib._Library__secret raised AccessDenied" in out.stdout
