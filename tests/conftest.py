"""Session-wide pytest glue.

``layer_summary`` lets a test report one line (e.g. the MicroPython layer's
``micropython: N passed, M failed``) in pytest's terminal summary, so a CI log
shows what ran inside the VM and not just that one pytest test passed.
"""

from collections.abc import Callable

import pytest

_SUMMARY_LINES = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SUMMARY_LINES] = []


@pytest.fixture
def layer_summary(pytestconfig: pytest.Config) -> Callable[[str], None]:
    return pytestconfig.stash[_SUMMARY_LINES].append


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(_SUMMARY_LINES, [])
    if lines:
        terminalreporter.section("layers")
        for line in lines:
            terminalreporter.write_line(line)
