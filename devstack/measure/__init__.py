"""Measurement: make bench, the cold-start harness, the simulated fleet, and the build's bytecode
and sizes."""
