"""Import a class from a 'module:attribute' string only when it is needed."""
from __future__ import annotations

import importlib


def load_class(import_string: str):
    module_name, _, attribute = import_string.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
