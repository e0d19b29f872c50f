"""Closed-loop evaluation: a discrete-event simulator of replicas, a router, Kubernetes timing, Prometheus-like
metrics and an autoscaling policy in the loop (docs/simulator.md; `python -m sim run SCENARIO`)."""
