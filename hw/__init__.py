"""Hardware abstraction: small interfaces, simulated parts (``hw.sim``) and board drivers."""
