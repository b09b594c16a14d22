"""The options each ``hw/mp`` driver takes besides ``driver``: the driver table reads this without
loading the factories (``hw/mp/factories.py``), so a board pays only for the drivers it builds."""

OPTIONS = {
    "digital_in": ("pin", "active_low", "pull"),
    "digital_out": ("pin", "active_low"),
    "relay": ("pin", "active_low", "feedback_pin", "feedback_active_low", "feedback_pull"),
    "pwm_heater": ("pin", "freq_hz", "max_power"),
    "thermistor_adc": ("pin", "beta", "r0_ohm", "t0_c", "series_ohm", "thermistor_low", "samples"),
    "ds18b20": ("pin", "rom", "resolution_bits"),
    "button": ("pin", "active_low", "pull", "debounce_ms"),
    "motor": ("in_up_pin", "in_down_pin", "stop_up_pin", "stop_down_pin", "stops_active_low", "stops_pull"),
    "status_led": ("pin", "active_low"),
    "watchdog": ("timeout_ms",),
}
