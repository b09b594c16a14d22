"""hw/mp drivers with fake pins, PWM, ADC and WDT passed to their constructors (no ``machine``)."""

import math

from hw.mp.button import Button
from hw.mp.gpio import DigitalIn, DigitalOut, Relay
from hw.mp.motor import DOWN, STOP, UP, EndStopMotor
from hw.mp.pwm_heater import PwmHeater
from hw.mp.status_led import StatusLed
from hw.mp.thermistor import ThermistorAdc
from hw.mp.watchdog import Watchdog
from tests.pure._check import approx, raises
from tests.pure._fake_machine import FakeAdc, FakePin, FakePwm, FakeWdt, ManualTime


def test_digital_in_honours_active_low():
    pin = FakePin(0)
    assert DigitalIn(pin).value() is False
    assert DigitalIn(pin, active_low=True).value() is True
    pin.level = 1
    assert DigitalIn(pin, active_low=True).value() is False


def test_digital_out_starts_off_and_drives_the_pin():
    pin = FakePin(1)
    out = DigitalOut(pin)
    assert pin.writes == [0] and out.on is False
    out.set(True)
    assert pin.level == 1 and out.on is True


def test_active_low_relay_starts_high_and_pulls_low_to_switch_on():
    pin = FakePin(0)
    relay = Relay(pin, active_low=True)
    assert pin.writes == [1]
    assert relay.sensed_on is None  # no feedback contact: cannot sense
    relay.set(True)
    assert pin.level == 0 and relay.on is True
    relay.set(False)
    assert pin.level == 1 and relay.on is False


def test_relay_feedback_reports_the_contact_not_the_command():
    contact = FakePin(0)
    relay = Relay(FakePin(), feedback=DigitalIn(contact, active_low=True))
    relay.set(False)
    assert relay.sensed_on is True  # welded contact: pulled low while commanded off
    contact.level = 1
    assert relay.sensed_on is False


def test_pwm_heater_on_off_and_power_fraction():
    pwm = FakePwm()
    heater = PwmHeater(pwm, freq_hz=20, max_power=0.5)
    assert pwm.hz == 20 and pwm.duty == 0 and heater.on is False
    heater.set(True)
    assert pwm.duty == 32768 and heater.on is True
    heater.set_power(0.25)
    assert pwm.duty == 8192  # a quarter of the capped half
    heater.set_power(7.0)  # clamped to full (times max_power)
    assert pwm.duty == 32768
    heater.set_power(float("nan"))  # a bad number means off
    assert pwm.duty == 0 and heater.on is False
    raises(ValueError, PwmHeater, FakePwm(), 10, 0.0)


def test_thermistor_at_r0_reads_t0():
    # Equal divider: the thermistor has its nominal resistance, so the reading is t0.
    adc = FakeAdc(32768)
    sensor = ThermistorAdc(adc, beta=3950, r0_ohm=10000, t0_c=25.0, series_ohm=10000, samples=4)
    value = sensor.read_c()
    assert value is not None and approx(value, 25.0, 0.01), value
    assert adc.reads == 4


def test_thermistor_follows_the_beta_equation_both_ways():
    # NTC on the low side: colder -> higher resistance -> higher voltage.
    low = ThermistorAdc(FakeAdc(0), thermistor_low=True)
    high = ThermistorAdc(FakeAdc(0), thermistor_low=False)
    # A 10k/3950 part at 0 C: R = R0 * exp(B * (1/T - 1/T0)), about 33.6k, behind 10k.
    r_ohm = 10000 * math.exp(3950 * (1 / 273.15 - 1 / 298.15))
    raw_low = int(65535 * r_ohm / (r_ohm + 10000) + 0.5)
    c = low.celsius_from_raw(raw_low)
    assert c is not None and approx(c, 0.0, 0.05), c
    c2 = high.celsius_from_raw(65535 - raw_low)
    assert c2 is not None and approx(c2, 0.0, 0.05), c2
    warm = low.celsius_from_raw(20000)
    cold = low.celsius_from_raw(50000)
    assert warm is not None and cold is not None and warm > cold


def test_thermistor_open_or_shorted_reads_none():
    for raw in (0, 10, 65535, 65500):
        assert ThermistorAdc(FakeAdc(raw)).read_c() is None, raw
    raises(ValueError, ThermistorAdc, FakeAdc(1), 0)


def test_button_debounces_both_edges():
    pin = FakePin(1)  # pulled up: released
    clock = ManualTime()
    button = Button(pin, active_low=True, debounce_ms=30, now_ms=clock)
    assert button.pressed is False and button.poll() is None
    pin.level = 0
    clock.t = 5
    assert button.poll() is None  # just changed
    pin.level = 1
    clock.t = 10
    assert button.poll() is None  # bounce
    pin.level = 0
    clock.t = 12
    assert button.poll() is None
    clock.t = 41
    assert button.poll() is None  # 29 ms stable: not yet
    clock.t = 42
    assert button.poll() == "press"
    assert button.pressed is True and button.presses == 1
    assert button.poll() is None  # reported once
    pin.level = 1
    clock.t = 50
    assert button.poll() is None
    clock.t = 80
    assert button.poll() == "release"
    assert button.presses == 1


def test_motor_never_drives_both_inputs_and_stops_at_the_end_stop():
    up, down = FakePin(), FakePin()
    top = FakePin(0)
    motor = EndStopMotor(up, down, stop_up=DigitalIn(top))
    assert motor.direction == STOP and up.level == 0 and down.level == 0
    assert motor.drive(UP) is True
    assert up.level == 1 and down.level == 0
    assert motor.drive(DOWN) is True
    # the up input went low before the down input went high
    assert up.writes[-1] == 0 and down.level == 1 and up.level == 0
    motor.drive(UP)
    assert motor.poll() is False
    top.level = 1
    assert motor.poll() is True
    assert motor.direction == STOP and up.level == 0 and down.level == 0
    assert motor.end_stop_hits == 1
    assert motor.drive(UP) is False  # refuses to drive into the closed stop
    assert up.level == 0
    assert motor.drive(DOWN) is True  # away from it is fine
    raises(ValueError, motor.drive, 2)


def test_status_led_patterns():
    pin = FakePin()
    led = StatusLed(pin)
    assert led.mode == "local_only"
    led.show("cloud_ok")
    for t in (0, 999, 1500, 12345):
        led.update(t)
        assert pin.level == 1
    led.show("local_only")
    led.update(500)
    assert pin.level == 1
    led.update(1500)
    assert pin.level == 0
    led.show("fault")
    seen = []
    for t in range(0, 800, 100):
        seen.append(led.lit_at(t))
    assert seen == [True, True, False, False, True, True, False, False]
    led.show("nonsense")
    assert led.mode == "fault"


def test_status_led_active_low_and_a_broken_pin_does_not_raise():
    pin = FakePin()
    led = StatusLed(pin, active_low=True, mode="cloud_ok")
    led.update(0)
    assert pin.level == 0 and led.lit is True
    pin.fail = True
    led.show("fault")
    led.update(300)
    assert led.write_errors == 1


def test_watchdog_arms_on_first_feed():
    made = []

    def make(ms):  # type: ignore[no-untyped-def]
        made.append(FakeWdt(ms))
        return made[-1]

    dog = Watchdog(make, timeout_ms=5000)
    assert dog.armed is False and made == []
    dog.feed()
    dog.feed()
    assert dog.armed is True and len(made) == 1
    assert made[0].timeout_ms == 5000 and made[0].feeds == 2 and dog.feeds == 2
    raises(ValueError, Watchdog, make, 0)
