"""One error type for everything a user can get wrong, formatted as one readable paragraph.

Every message names the config key (or file), the bad value, what is allowed and the fix, the
way torchvision's and Lightning's best errors do. `python -m tlbench` prints it without a
traceback (set HYDRA_FULL_ERROR=1 to see one).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TlbenchError(Exception):
    """A problem the user can fix: bad config value, missing file, missing weights."""

    def __init__(
        self,
        problem: str,
        *,
        key: str | None = None,
        value: object = None,
        allowed: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem, self.key, self.value, self.allowed, self.fix = (
            problem,
            key,
            value,
            allowed,
            fix,
        )
        parts = []
        if key is not None:
            parts.append(f"{key}={value!r}:")
        parts.append(problem.rstrip(".") + ".")
        if allowed:
            parts.append(f"Allowed: {allowed.rstrip('.')}.")
        if fix:
            parts.append(f"Fix: {fix.rstrip('.')}.")
        super().__init__(" ".join(parts))


def nearest(word: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """Close matches first; if none are close, the first few choices (sorted)."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    return close or choices[:n]


def one_of(key: str, value: str, choices: Iterable[str], what: str = "value") -> TlbenchError:
    """Error for a value that is not among `choices`, with close-match suggestions."""
    choices = sorted(set(choices))
    suggestions = nearest(value, choices)
    listing = (
        ", ".join(choices)
        if len(choices) <= 12
        else f"{len(choices)} names, e.g. " + ", ".join(suggestions)
    )
    return TlbenchError(
        f"unknown {what}",
        key=key,
        value=value,
        allowed=listing,
        fix=f"use one of the allowed names (did you mean {' or '.join(repr(s) for s in suggestions[:3])}?)",
    )
