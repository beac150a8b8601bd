"""Lazy package exports (PEP 562), shared by the packages whose names pull in heavy libraries.

A package lists where each exported name lives and binds ``__getattr__, __dir__ =
lazy_exports(__name__, WHERE)``: ``import classifiers`` then imports nothing heavy, and the first
access of ``classifiers.NudeNetClassifier`` imports its module (onnxruntime) and caches the name
in the package, so later lookups never reach ``__getattr__`` again.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``; ``where`` maps each
    exported name to the module that defines it."""
    namespace = vars(sys.modules[package])
    exported = namespace.get("__all__")
    if exported is not None and set(exported) != set(where):
        raise ImportError(f"{package}.__all__ and its lazy export table disagree")

    def getattr_(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(where))

    return getattr_, dir_
