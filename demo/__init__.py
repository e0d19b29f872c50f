"""`make demo`: the whole inferno control loop on the embedded local cluster (see demo/run.py)."""
