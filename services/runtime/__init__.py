"""Runtime plumbing shared by the four services: config from the environment, logging, gRPC serving, the
Kubernetes client, process start-up and the proto <-> model mapping (convert)."""
