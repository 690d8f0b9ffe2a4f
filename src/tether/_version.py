"""The version of this distribution, in one place: ``pyproject.toml`` reads it from here
(``[tool.setuptools.dynamic]``), ``tether.__version__``, ``tether --version`` and the
``hello`` a peer sends (``tether.protocol.VERSION``) import it. It imports nothing."""

__all__ = ["__version__"]

__version__ = "0.1.0"
