"""Test and benchmark harness, shipped in no image: the whole product on the local cluster (stack.py: emulated
cluster + data files + the four services as processes, services.py), the demo's scenario (scenario.py) and
seeded synthetic systems (synthetic.py). Used by the demo, the benchmarks and the tests."""
