"""Host simulation: outside weather, a room's heat balance, and simulated parts with fault knobs.

* ``hw.sim.outside.OutsideProfile`` -- daily sinusoid + smooth seeded weather
* ``hw.sim.room.Room``              -- lumped thermal model, integrated lazily and exactly
* ``hw.sim.world.SimWorld``         -- both, built from a board's ``sim`` section, plus fault state
* ``hw.sim.parts``                  -- ``SimThermometer`` (TempSensor), ``SimRelay`` (Switch)

``hw.build.build_hw(board, world)`` makes the parts a board's ``hw`` section names.
Submodules are imported on use, not here, to keep a board's heap small.
"""
