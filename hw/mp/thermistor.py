"""An NTC thermistor in a voltage divider read by an ADC, converted with the Beta equation.

    1/T = 1/T0 + ln(R/R0)/B         (T in kelvin)

The thermistor sits between the ADC pin and ground with ``series_ohm`` to
the supply (``thermistor_low=True``), or the other way round. A reading at a
rail (open or shorted thermistor, broken wire) is ``None``: the sensor did
not answer. Any other reading is converted and returned, plausible or not:
the control law judges plausibility (see ``hw.interfaces.TempSensor``).
"""

import math

from hw.interfaces import TempSensor

_FULL = 65535
_KELVIN = 273.15


class ThermistorAdc(TempSensor):
    def __init__(  # type: ignore[no-untyped-def]
        self,
        adc,
        beta: float = 3950.0,
        r0_ohm: float = 10000.0,
        t0_c: float = 25.0,
        series_ohm: float = 10000.0,
        thermistor_low: bool = True,
        samples: int = 4,
        rail_margin: int = 64,
    ) -> None:
        """``adc``: ``machine.ADC``-like (``read_u16()``); ``samples`` readings are averaged."""
        if beta <= 0 or r0_ohm <= 0 or series_ohm <= 0 or samples < 1:
            raise ValueError("beta, r0_ohm, series_ohm and samples must be positive")
        self.adc = adc
        self.beta = float(beta)
        self.r0_ohm = float(r0_ohm)
        self.inv_t0 = 1.0 / (t0_c + _KELVIN)
        self.series_ohm = float(series_ohm)
        self.thermistor_low = thermistor_low
        self.samples = samples
        self.rail_margin = rail_margin
        self.last_raw = -1

    def read_c(self) -> float | None:
        total = 0
        for _ in range(self.samples):
            total += self.adc.read_u16()
        raw = total // self.samples
        self.last_raw = raw
        return self.celsius_from_raw(raw)

    def celsius_from_raw(self, raw: int) -> float | None:
        if raw <= self.rail_margin or raw >= _FULL - self.rail_margin:
            return None
        if self.thermistor_low:
            r_ohm = self.series_ohm * raw / (_FULL - raw)
        else:
            r_ohm = self.series_ohm * (_FULL - raw) / raw
        inv_t = self.inv_t0 + math.log(r_ohm / self.r0_ohm) / self.beta
        return 1.0 / inv_t - _KELVIN
