"""One error type for everything a user can get wrong, formatted as one readable paragraph, and
the one way every entry point prints errors (`say_error`).

Every message names the config key (or file), the bad value, what is allowed and the fix, the
way torchvision's and Lightning's best errors do. `python -m tlbench` prints it without a
traceback (set HYDRA_FULL_ERROR=1 to see one).
"""

from __future__ import annotations

import difflib
import os
import sys
import traceback
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
            parts.append(f"{key}={_shown(value)!r}:")
        parts.append(_sentence(problem))
        if allowed:
            parts.append(_sentence(f"Allowed: {allowed}"))
        if fix:
            parts.append(_sentence(f"Fix: {fix}"))
        super().__init__(" ".join(parts))


def _shown(value: object) -> object:
    """A whole float as the integer a user typed: a typed schema holds `atol=-1` as -1.0."""
    whole = isinstance(value, float) and value.is_integer() and abs(value) < 1e15
    return int(value) if whole else value


def _sentence(text: str) -> str:
    """`text` ending in one full stop; an ellipsis (`key=...`) is kept whole."""
    return text if text.endswith("...") else text.rstrip(".") + "."


def nearest(word: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """Close matches first; if none are close, the first few choices (sorted)."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    return close or choices[:n]


def did_you_mean(word: str, choices: Iterable[str], close: list[str] | None = None) -> str:
    """The hint "did you mean 'a' or 'b'?" for the close matches (or the given ones), or "see
    Allowed" when nothing is close, rather than suggesting unrelated names."""
    close = close or difflib.get_close_matches(word, sorted(set(choices)), n=3, cutoff=0.5)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "see Allowed"


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


def full_errors() -> bool:
    """`HYDRA_FULL_ERROR=1`: show tracebacks instead of one paragraph."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def say_error(exc: BaseException, traceback_at: str | None = None) -> int:
    """Print `exc` the tlbench way and return the exit code it deserves: a TlbenchError is one
    paragraph and 2; anything else is a bug or a library's own complaint, printed with its
    traceback (unless Hydra prints it: HYDRA_FULL_ERROR=1), and 1."""
    if isinstance(exc, TlbenchError):
        print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
        return 2
    if not full_errors():  # else Hydra prints it when the error is re-raised
        traceback.print_exception(exc, file=sys.stderr)
    where = f" (the traceback is also in {traceback_at})" if traceback_at else ""
    print(f"\nError: {type(exc).__name__}: {exc}{where}\n", file=sys.stderr, flush=True)
    return 1


def require(cfg, *keys: str, example: str) -> None:
    """Mandatory `???` keys as a one-paragraph error instead of Hydra's MissingMandatoryValue."""
    from omegaconf import OmegaConf

    for key in keys:
        if OmegaConf.is_missing(cfg, key):
            raise TlbenchError(
                "this value is required", key=key, value="???", fix=f"e.g. {example}"
            )
