"""The host-side cloud (CPython only): shadow service, ledger, fault proxy, scenarios."""
