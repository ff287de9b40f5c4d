"""FAR targets: the one validator and the one default tuple.

A FAR target ``f`` is a share of different-identity pairs, ``0 < f <= 1`` (DESIGN section 2).
Metrics, evaluation, recipes, the registry and the CLI all check it here, so a bad ``--far``,
a bad recipe ``eval.fars`` and a bad ``val_at_far(far=...)`` fail with the same words.
Tests: tests/metrics/test_fars.py.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Iterable

from harmony.errors import InvalidInput

DEFAULT_FARS: tuple[float, ...] = (1e-2, 1e-3)  # what eval, training reports and recipes measure unless told
HINT = "a FAR is a share of different-identity pairs, e.g. 1e-3 (or 1e-2 and 1e-3)"


def check_far(far: object, name: str = "FAR") -> float:
    """``far`` as a float in (0, 1], or InvalidInput naming ``name`` (``"--far"``, ``"gallery FAR"``).

    Numbers only: a bool, a string or NaN is refused rather than coerced.
    """
    if isinstance(far, bool) or not isinstance(far, Real) or math.isnan(float(far)) or not 0.0 < float(far) <= 1.0:
        shown = f"{far:g}" if isinstance(far, Real) and not isinstance(far, bool) else repr(far)
        raise InvalidInput(f"{name} {shown} is outside (0, 1]", hint=HINT)
    return float(far)


def check_fars(fars: Iterable[object], name: str = "FAR", unique: bool = True) -> tuple[float, ...]:
    """Each target checked by :func:`check_far`, at least one; ``unique``: duplicates dropped, order
    kept (``val_at_far`` keeps them, its results align with its input)."""
    out: list[float] = []
    for f in fars:
        f = check_far(f, name)
        if not unique or f not in out:
            out.append(f)
    if not out:
        raise InvalidInput(f"no {name} target given", hint=HINT)
    return tuple(out)
