"""Live serialization between two real processes: classes sent on demand, and a version
mismatch between the two sides detected by fingerprint."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tether

ROOT = Path(__file__).parents[2]

SHAPES_V1 = '''
import dataclasses

@dataclasses.dataclass
class Circle:
    r: float

    def area(self):
        return round(3.14159 * self.r * self.r, 2)
'''
SHAPES_V2 = SHAPES_V1.replace("3.14159", "3.0")  # the server's different version

SERVER = '''
import sys
sys.path.insert(0, sys.argv[1])
import tether, shapes
tether.register(shapes.Circle)  # clients may send Circles by value

class Root:
    def area(self, shape):
        return shape.area()
    def kind(self, shape):
        return type(shape).__module__ + "." + type(shape).__qualname__
    def where(self, shape):
        return "server's own class" if type(shape) is shapes.Circle else "class sent by the client"

server = tether.serve(Root(), port=0, accept_code=sys.argv[2] == "yes", send_tracebacks=True)
print(server.url, flush=True)
server.serve_forever()
'''


def start(tmp: Path, accept: bool) -> tuple[subprocess.Popen[str], str]:
    server_dir = tmp / ("server-yes" if accept else "server-no")
    server_dir.mkdir()
    (server_dir / "shapes.py").write_text(SHAPES_V2)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(server_dir), "yes" if accept else "no"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("ws://"), url
    return proc, url


@pytest.fixture
def shapes(tmp_path: Path) -> Iterator[object]:
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    (client_dir / "shapes.py").write_text(SHAPES_V1)
    sys.path.insert(0, str(client_dir))
    sys.modules.pop("shapes", None)
    import shapes as module

    try:
        yield module
    finally:
        sys.path.remove(str(client_dir))
        sys.modules.pop("shapes", None)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[bool, str]]:
    started = [start(tmp_path, False), start(tmp_path, True)]
    try:
        yield {False: started[0][1], True: started[1][1]}
    finally:
        for proc, _ in started:
            proc.kill()
            proc.wait(5)


def local_square_class() -> type:
    @dataclasses.dataclass
    class Square:
        side: float

        def area(self) -> float:
            return self.side * self.side

    return Square


def test_a_class_only_the_client_has_is_sent_on_demand(servers: dict[bool, str]) -> None:
    Square = tether.register(local_square_class())  # its source may go to a peer that asks
    with tether.connect(servers[True]) as peer:
        assert peer.root.area(Square(3.0)) == 9.0
        assert peer.root.kind(Square(1.0)).endswith("local_square_class.<locals>.Square")
    with tether.connect(servers[False]) as peer:
        with pytest.raises(tether.ProtocolError, match=r"Square cannot be received: this side does not let untrusted peers name that class"):
            peer.root.area(Square(3.0))


def test_a_version_mismatch_is_detected_not_silently_used(shapes: object, servers: dict[bool, str]) -> None:
    circle = tether.register(shapes.Circle)(1.0)  # type: ignore[attr-defined]  # shared on request
    with tether.connect(servers[False]) as peer:
        with pytest.raises(tether.ProtocolError, match=r"shapes\.Circle cannot be received: .*different version"):
            peer.root.area(circle)
    with tether.connect(servers[True]) as peer:
        assert peer.root.where(circle) == "class sent by the client"
        assert peer.root.area(circle) == 3.14  # the client's version of area()
