"""``HwSet``: a board's parts by name, as the runtime sees them in ``env.hw``."""

from device.errors import ConfigError


class HwSet:
    def __init__(self, parts: dict | None = None) -> None:
        self._parts = dict(parts) if parts else {}

    def add(self, name: str, part: object) -> None:
        self._parts[name] = part

    def get(self, name: str) -> object:
        part = self._parts.get(name)
        if part is None:
            raise ConfigError("hw." + name, "no such part on this board")
        return part

    def has(self, name: str) -> bool:
        return name in self._parts

    def names(self) -> list:
        return sorted(self._parts)
