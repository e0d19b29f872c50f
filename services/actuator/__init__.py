"""The actuator: applies allocations to Deployments and exports them as metrics."""
