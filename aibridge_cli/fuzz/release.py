"""The release oracle, sans-io: an upstream answer is let go soon after its client left.

A handler that is not cancelled when its client hangs up keeps reading the upstream's
answer (and paying for it) with nobody to give it to. The world used to close everything
at teardown, so only a black-box leak probe could see it; now the simulated upstream
keeps each answer's life (``sim.raw_upstream.Answer``) and this oracle holds every answer
to close within ``RELEASE`` simulated seconds of the moment the clients were done.
The bound is generous: a proxy that cancels closes its upstream answer at the same
virtual instant; the world's own teardown closes what is left only 5 s later.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..sim.raw_upstream import Answer

RELEASE = 1.0  # seconds of virtual time
SHAPE = "an upstream answer still open after its client left"


def release_problems(answers: Iterable[Answer], left: float) -> list[str]:
    """Each answer closed more than ``RELEASE`` s after ``left`` (when the clients left)."""
    return [
        f"upstream answer #{a.index} was closed {a.closed - left:g} s after the client left "
        f"(bound {RELEASE:g} s)"
        for a in answers
        if a.closed - left > RELEASE
    ]
