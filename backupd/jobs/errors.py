"""How a run step says that the run failed, and whose problem it is."""
from __future__ import annotations

from .result import Category


class RunFailed(Exception):
    """Ends a run with an error category and a message that says what to do."""

    def __init__(self, category: Category, message: str):
        super().__init__(message)
        self.category = category
