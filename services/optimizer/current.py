"""What the model predicts for each server as it runs now, to hold against what is observed.

For a server with a current accelerator, replicas and a measured load, the queueing model (docs/model.md s2,
service-time model v1 of s3.1 whatever model sizes the replicas: the check judges the data, and v0.3's TTFT is
known to run 2-16x high against a continuous-batching engine, `python -m bench emulator`) is evaluated at its
current accelerator's perfParms, the batch size the optimizer decided for it on that accelerator (else the
sizing rule's: the server's max batch, else maxBatchSize x atTokens / K, docs/model.md s4), and the arrival rate
split evenly over its current replicas. The controller compares these predictions with the observed ITL and TTFT
(services/controller/modelcheck.py): when they disagree the model data does not describe the server (perfParms,
batch rule), and the decisions built on it cannot be trusted. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from services.core import model as m
from services.optimizer.sizing import batch_size
from services.perfmodel.queueing import analyze_point
from services.perfmodel.servicetime import default_queue, replica_model_for

MS_PER_MINUTE = 60_000.0


def predict_current(system: m.SystemData, decided: Mapping[str, m.Allocation] | None = None
                    ) -> dict[str, m.Prediction]:
    """Server name -> Prediction at its current allocation and load; servers without a current accelerator,
    replicas, perf data for it, or load (no arrivals, no output tokens) are left out. The batch size is the one
    the optimizer ``decided`` for the server on the same accelerator, else the sizing rule's."""
    settings = replace(system.optimizer, service_model=m.ServiceModel.V1)
    predictions = {}
    for server in sorted(system.servers, key=lambda s: s.name):
        current, load = server.current, server.load
        perf = system.perf(server.model, current.accelerator) if current.accelerator else None
        if perf is None or current.num_replicas <= 0 or load.arrival_rate_rpm <= 0 or load.avg_out_tokens <= 0:
            continue
        allocation = (decided or {}).get(server.name)
        batch = batch_size(server.max_batch_size, perf, load.avg_out_tokens)
        if allocation is not None and allocation.accelerator == current.accelerator and allocation.max_batch > 0:
            batch = allocation.max_batch
        queue = server.max_queue_size if server.max_queue_size > 0 else default_queue(settings, batch)
        model = replica_model_for(settings, load, perf.perf, batch, queue)
        rate_per_ms = load.arrival_rate_rpm / MS_PER_MINUTE / current.num_replicas
        point = analyze_point(model, rate_per_ms)
        predictions[server.name] = m.Prediction(server.name, current.accelerator, current.num_replicas, batch,
                                                point.itl_ms, point.ttft_ms, rate_per_ms > point.max_rate_per_ms)
    return predictions
