"""Seeded synthetic systems for benchmarks and property tests: 12 accelerator kinds, a handful of models,
four service classes and any number of servers with varied load. Pure: randomness comes from ``seed``."""

from __future__ import annotations

import random

from services.core.model import (
    Accelerator,
    Allocation,
    Capacity,
    Load,
    ModelPerf,
    ModelTarget,
    OptimizerSettings,
    PerfParms,
    SaturationPolicy,
    Server,
    ServiceClass,
    SystemData,
)

# (card type, cost per hour of one card, speed relative to G2)
_CARDS = (("L4", 6.0, 0.5), ("A100", 40.0, 1.6), ("H100", 75.0, 2.6), ("G2", 23.0, 1.0), ("MI250", 46.0, 1.7),
          ("MI300X", 65.0, 2.4))
_MODELS = (("llama_7b", 1.0), ("llama_13b", 1.8), ("granite_13b", 1.8), ("granite_34b", 4.5), ("mixtral_8_7b", 6.0),
           ("llama_70b", 9.0))
_CLASSES = (("Premium", 1, 1.0), ("Bronze", 2, 2.0), ("Free", 3, 4.0), ("Batch", 4, 0.0))


def accelerators() -> tuple[Accelerator, ...]:
    """12 kinds: each card type alone and as a pair (``2x``), cost per accelerator including multiplicity."""
    kinds = []
    for card, cost, _ in _CARDS:
        kinds.append(Accelerator(card, card, 1, cost_per_hour=cost))
        kinds.append(Accelerator(f"2x{card}", card, 2, cost_per_hour=2 * cost))
    return tuple(kinds)


def _perf(model_size: float, speed: float, pair: bool, rng: random.Random) -> PerfParms:
    scale = model_size / (speed * (1.8 if pair else 1.0)) * rng.uniform(0.9, 1.1)
    return PerfParms(alpha_ms=9.0 * scale, beta_ms=0.02 * scale, gamma_ms=0.0006 * scale)


def model_perfs(rng: random.Random) -> tuple[ModelPerf, ...]:
    """Perf data for every (model, accelerator) pair except the big models on single small cards."""
    perfs = []
    for model, size in _MODELS:
        for card, _, speed in _CARDS:
            for pair in (False, True):
                if size > 4 and speed < 1 and not pair:
                    continue
                acc = f"2x{card}" if pair else card
                batch = min(max(int(96 * speed * (2 if pair else 1) / size), 2), 256)
                perfs.append(ModelPerf(model, acc, 1, batch, 512, _perf(size, speed, pair, rng)))
    return tuple(perfs)


def service_classes() -> tuple[ServiceClass, ...]:
    """Premium / Bronze / Free with ITL and TTFT targets scaled by the class, Batch with a tokens/s target."""
    classes = []
    for name, priority, factor in _CLASSES:
        targets = tuple(ModelTarget(model, slo_itl_ms=40.0 * factor * (1 + size / 4), slo_ttft_ms=1000.0 * factor)
                        if factor else ModelTarget(model, slo_tps=2000.0)
                        for model, size in _MODELS)
        classes.append(ServiceClass(name, priority, targets))
    return tuple(classes)


def _server(index: int, rng: random.Random) -> Server:
    cls = rng.choice(_CLASSES)[0]
    model = rng.choice(_MODELS)[0]
    load = Load(arrival_rate_rpm=rng.choice((0.0, *[rng.uniform(6, 600)] * 19)),
                avg_in_tokens=float(rng.randrange(64, 2048)), avg_out_tokens=float(rng.randrange(128, 2048)))
    return Server(name=f"{cls}-{model}-{index:05d}", service_class=cls, model=model,
                  min_replicas=rng.choice((0, 0, 0, 1)), current=Allocation(load=load))


def synthetic_system(servers: int, seed: int = 0, capacity_per_type: int | None = None,
                     policy: SaturationPolicy = SaturationPolicy.ROUND_ROBIN) -> SystemData:
    """A system of ``servers`` servers over 12 accelerator kinds; same seed, same system.

    ``capacity_per_type`` cards of each type (default 40 per server per type: rarely binding).
    """
    rng = random.Random(seed)
    cards = capacity_per_type if capacity_per_type is not None else 40 * servers
    return SystemData(accelerators(), model_perfs(rng), service_classes(),
                      tuple(_server(i, rng) for i in range(servers)),
                      OptimizerSettings(saturation_policy=policy),
                      Capacity({card: cards for card, _, _ in _CARDS}))
