"""Lazy re-exports for a package ``__init__`` (PEP 562 module ``__getattr__``).

A package lists its public names and the modules that define them; each is imported on first
use, so that importing one light submodule does not build the package's whole import graph.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], object], list[str]]:
    """The module ``__getattr__`` and ``__all__`` of a package that re-exports names lazily.

    Use in a package's ``__init__.py``::

        __getattr__, __all__ = lazy_exports(__name__, {"Name": "package.module", ...})

    Args:
        package: the package's ``__name__`` (named in the ``AttributeError`` of unknown names).
        exports: public name -> the module that defines it.

    Returns:
        The ``__getattr__`` that imports the defining module on first use and returns the name
        from it, and the sorted public names for ``__all__``.
    """

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__, sorted(exports)
