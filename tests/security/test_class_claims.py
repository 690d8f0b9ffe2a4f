"""A proxy's claimed class (the class info its peer sent) is believed only for builtins classes:
a peer cannot make the server's ``isinstance`` checks or ``p.__class__`` walks land on one of
the server's own classes, and so on their methods' globals."""

from __future__ import annotations

import pytest

import tether

from .conftest import still_answers
from .services import SECRET, Vault
from .wire import CLASS_INFO_REF, DESCRIBED_REF, MY_OBJECT, RawPeer, described, string, words

FORGED_VAULT = described(7, 1, "tests.security.services", "Vault", methods=("open",))
CLASS_OF = "{0.__class__.__module__}.{0.__class__.__qualname__}"


def test_the_clients_own_vault_does_not_pass_the_servers_isinstance_check(peer: tether.Peer) -> None:
    # In-process, the client's Vault is the very class the server checks for: its class info
    # names tests.security.services.Vault truthfully from the client's side.
    mine = Vault("mallory")
    assert peer.root.is_vault(mine) is False
    assert peer.root.render(CLASS_OF, mine) == "tether.proxy.Proxy"
    assert peer.root.add(1, 2) == 3


def test_a_forged_class_info_does_not_pass_the_servers_isinstance_check(raw: RawPeer) -> None:
    assert raw.call_root("is_vault", FORGED_VAULT) is False
    assert raw.call_root("render", string(CLASS_OF), FORGED_VAULT) == "tether.proxy.Proxy"
    still_answers(raw)


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{0.__class__.open.__globals__[SECRET]}", r"type object 'Proxy' has no attribute 'open'"),
        ("{0.__class__.__init__.__globals__[SECRET]}", r"'wrapper_descriptor' object has no attribute '__globals__'"),
    ],
    ids=["through a method of the claimed class", "through the claimed class's __init__"],
)
def test_a_format_walk_from_a_forged_class_does_not_reach_the_servers_module_globals(
    raw: RawPeer, template: str, error: str
) -> None:
    with pytest.raises(AttributeError, match=error) as info:
        raw.call_root("render", string(template), FORGED_VAULT)
    assert SECRET not in str(info.value)
    still_answers(raw)


@pytest.mark.parametrize(
    ("qualname", "real"),
    [
        ("__spec__.__class__", "_frozen_importlib.ModuleSpec"),
        ("__loader__", "_frozen_importlib.BuiltinImporter"),
        ("help.__class__", "_sitebuiltins._Helper"),
    ],
)
def test_a_claim_under_the_builtins_module_is_believed_only_for_a_builtins_class(
    raw: RawPeer, qualname: str, real: str
) -> None:
    """The claim "module builtins" with a dotted qualname walks attributes from the builtins
    module: it must not land on classes of other modules (importlib's, site's, or whatever an
    application installed into builtins)."""
    claim = described(8, 2, "builtins", qualname)
    assert raw.call_root("render", string(CLASS_OF), claim) == "tether.proxy.Proxy", f"p.__class__ is {real}"
    still_answers(raw)


def test_a_class_info_back_reference_to_an_undefined_id_is_refused(raw: RawPeer) -> None:
    with pytest.raises(tether.ProtocolError, match=r"class id 77 was never defined by the peer"):
        raw.call_root("is_vault", words(DESCRIBED_REF, MY_OBJECT + 7, CLASS_INFO_REF, 77))
    still_answers(raw)
