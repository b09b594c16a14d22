"""The running firmware's version, and the one place that parses version text.

``VERSION`` matches ``pyproject.toml``; an OTA bundle carries its own version
and is refused unless it is strictly newer (``device/ota/manifest.py``).
"""

VERSION = "0.1.0"


def parse_version(text: object) -> tuple:
    """``"1.2.3"`` -> ``(1, 2, 3)``; ValueError on anything but three dot-separated decimal numbers."""
    if not isinstance(text, str):
        raise ValueError("version must be text like 1.2.3")
    parts = text.split(".")
    if len(parts) != 3:
        raise ValueError("version must be N.N.N, got " + repr(text))
    numbers = []
    for part in parts:
        # int() alone would take "+1", " 1" or "1_0"; a version is plain digits.
        if not part or len(part) > 9 or not all(c in "0123456789" for c in part):
            raise ValueError("version must be N.N.N, got " + repr(text))
        numbers.append(int(part))
    return (numbers[0], numbers[1], numbers[2])
