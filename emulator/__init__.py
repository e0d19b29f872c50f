"""The local cluster: an emulated Kubernetes API, emulated vLLM replicas, a load generator and their runner."""
