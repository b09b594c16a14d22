"""Some harnesses reuse the test suite's pieces (the crash-simulating file layer
``tests/store/cutfiles.py``, the outbox state machines of ``tests/unit``): the same
code the tests trust. ``tests`` is not an installed package, so a harness started
through the ``brickproof`` script puts the checkout on ``sys.path`` first; the
harnesses run from a checkout of this repository.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def use_repo_tests() -> None:
    if not (REPO / "tests" / "__init__.py").is_file():
        raise RuntimeError(f"this harness needs the repository's tests/ (not found under {REPO})")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
