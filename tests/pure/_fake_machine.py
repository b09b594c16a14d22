"""Fake ``Pin``/``PWM``/``ADC``/``WDT``/1-Wire objects for the driver tests (handed to constructors)."""


class FakePin:
    def __init__(self, level: int = 0) -> None:
        self.level = level
        self.writes: list = []
        self.fail = False

    def value(self, v=None):  # type: ignore[no-untyped-def]
        if v is None:
            return self.level
        if self.fail:
            raise OSError(5)
        self.level = 1 if v else 0
        self.writes.append(self.level)
        return None


class FakePwm:
    def __init__(self) -> None:
        self.hz = None
        self.duty = None

    def freq(self, hz: int) -> None:
        self.hz = hz

    def duty_u16(self, n: int) -> None:
        assert 0 <= n <= 65535, n
        self.duty = n


class FakeAdc:
    def __init__(self, raw: int) -> None:
        self.raw = raw
        self.reads = 0

    def read_u16(self) -> int:
        self.reads += 1
        return self.raw


class FakeWdt:
    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self.feeds = 0

    def feed(self) -> None:
        self.feeds += 1


class ManualTime:
    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        return self.t
