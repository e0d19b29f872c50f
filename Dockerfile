# One image for the four services: python -m services.controller | collector | optimizer | actuator.
# docker build -t REGISTRY/inferno:0.1.0 .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies first (a layer that changes only with the pins): the project's pinned set, non-editable.
COPY pyproject.toml constraints.txt /tmp/build/
RUN pip install -c /tmp/build/constraints.txt /tmp/build && rm -rf /tmp/build

WORKDIR /app

# gRPC stubs generated here, by the grpcio-tools and protobuf that run them (as `make proto` does).
COPY proto/ proto/
RUN python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. proto/*.proto

COPY services/ services/
RUN python -m compileall -q proto services

USER 65532:65532
# reachable from outside the pod: the controller's HTTP, the actuator's metrics, the gRPC health ports (the gRPC
# services themselves listen on the pod's loopback, 3301-3303)
EXPOSE 3300 3304 3311 3312 3313
CMD ["python", "-m", "services.controller"]
