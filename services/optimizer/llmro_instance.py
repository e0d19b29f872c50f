"""The LLM-RO reference instance (docs/model.md s10): 6 query types, 6 Llama models, 10 GPU tiers (a GPU type
with a precision), tensor-parallel degrees 1/2/4/8, with nominal per-token delays and error rates and their
maximum deviations for budgeted (Bertsimas-Sim) uncertainty.

``generate(seed)`` reproduces the published generator draw for draw: numpy's legacy global RNG (``np.random.seed``
then ``np.random.randint`` / ``np.random.uniform``) in the order arrival rates, rental price factors, storage price,
compute per token, data size per token, delay penalties, unmet penalties, base delays, base errors, delay
deviation factors (6 x 6 x 10), error deviation factors (6 x 6 x 10). At seed 42 the sums of the nominal delays,
delay deviations, nominal errors and error deviations are 462.05528, 77.958865, 13.059795 and 2.3486016.

Units as in the reference: arrival rates in queries per hour, prices in $ per hour (rental per GPU, storage per
GB), delays in ms per token, memory in GB, compute in TFLOPs.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, fields

import numpy as np

from services.core import datafiles
from services.core.errors import DataFileError, InvalidInputError

QUERY_TYPES = ("Summarization", "Code_Gen", "Translation", "Math_Solving", "Image_Gen", "Video_Gen")
MODELS = ("Llama-3.2-1B", "Llama-3.2-3B", "Llama-3.1-8B", "Llama-3.1-70B", "Llama-3.2-31B", "Llama-3.2-11B-Vision")
GPU_TIERS = ("A6000_FP16", "A6000_INT8", "A6000_INT4", "RTX_4090_FP16", "RTX_4090_INT8", "RTX_4090_INT4",
             "A100_40GB_FP16", "A100_40GB_INT8", "H100_80GB_FP16", "H100_80GB_INT8")
TP_DEGREES = (1, 2, 4, 8)

# Fixed data of the reference instance.
_MODEL_SIZE_GB = (2, 6, 16, 140, 810, 22)
_KV_GB_PER_TOKEN = (0.02, 0.05, 0.15, 1.4, 8.0, 0.25)
_INPUT_TOKENS = (512, 256, 128, 64, 32, 48)
_OUTPUT_TOKENS = (256, 512, 128, 256, 1024, 2048)
_GPU_MEMORY_GB = (48, 48, 80, 48, 24, 24, 24, 40, 80, 80)
_GPU_TFLOPS = (40.7, 58.1, 67, 77.4, 82.6, 123.9, 165.2, 468, 989, 1483.5)
_BASE_RENTAL = (0.65, 0.65, 2.50, 0.65, 0.35, 0.35, 1.20, 1.20, 2.0, 2.50)
_DELAY_FACTOR_BY_MODEL = (0.3, 0.5, 1.5, 5, 3.5, 2.5)
_CAPABILITY_BY_MODEL = (0.5, 1.5, 3, 8, 5, 2.5)
_PRECISION_ERROR_FACTOR = {"FP16": 1.0, "INT8": 1.15, "INT4": 1.35}

# Ranges of the random draws, in draw order within each group ([low, high) as numpy's randint / uniform).
_ARRIVAL_RANGES = ((80, 120), (60, 100), (100, 140), (40, 80), (20, 60), (10, 30))
_COMPUTE_RANGES = ((0.3, 0.7), (0.6, 1.0), (0.2, 0.4), (1.0, 1.5), (2.0, 3.0), (3.5, 4.5))
_TOKEN_SIZE_RANGES = ((0.0008, 0.0012),) * 4 + ((0.004, 0.006), (0.008, 0.012))
_DELAY_PENALTY_RANGES = ((0.005, 0.010), (0.015, 0.025), (0.005, 0.010), (0.010, 0.020), (0.020, 0.030),
                         (0.030, 0.050))
_UNMET_PENALTY_RANGES = ((30, 50), (80, 100), (20, 40), (80, 100), (150, 200), (150, 200))
_BASE_DELAY_RANGES = ((0.4, 0.6), (0.7, 0.9), (0.3, 0.4), (1.0, 1.2), (2.0, 2.5), (3.5, 4.0))
_BASE_ERROR_RANGES = ((0.03, 0.05), (0.02, 0.03), (0.02, 0.03), (0.05, 0.07), (0.06, 0.08), (0.08, 0.10))
_DEVIATION_RANGE = (0.10, 0.25)


@dataclass(frozen=True)
class Instance:
    """One LLM-RO instance. Index order: i query type, j model, k GPU tier.

    Vectors are tuples; ``delay_ms``/``delay_dev_ms`` (nominal and maximum deviation of the per-token delay, ms)
    and ``error``/``error_dev`` (error rate, fraction) are nested tuples of shape (I, J, K).
    """

    query_types: tuple[str, ...]
    models: tuple[str, ...]
    gpu_tiers: tuple[str, ...]
    tp_degrees: tuple[int, ...]
    model_size_gb: tuple[float, ...]        # J, weights
    kv_gb_per_token: tuple[float, ...]      # J, KV cache per token
    input_tokens: tuple[float, ...]         # I
    output_tokens: tuple[float, ...]        # I
    arrival_per_h: tuple[float, ...]        # I, queries per hour
    gpu_memory_gb: tuple[float, ...]        # K
    gpu_tflops: tuple[float, ...]           # K
    rental_per_h: tuple[float, ...]         # K, $ per GPU-hour
    storage_per_gb_h: float                 # $ per GB-hour
    storage_capacity_gb: float
    compute_tflops_per_token: tuple[float, ...]  # I (the reference's alpha; per 1000 tokens in its notes)
    data_gb_per_token: tuple[float, ...]    # I (the reference's theta)
    delay_penalty: tuple[float, ...]        # I, $ per ms of delay per query
    unmet_penalty: tuple[float, ...]        # I, $ per unserved query (already scaled by 0.1 as the reference)
    budget: float                           # $ over the horizon
    horizon_h: float                        # rental period
    delay_limit_ms: tuple[float, ...]       # I
    error_limit: tuple[float, ...]          # I
    residency_h: float                      # KV residency time (Little's law)
    unmet_cap: float                        # largest unserved fraction per query type
    gamma: float                            # uncertainty budget (delay and error rows, delay cost)
    delay_ms: tuple                         # (I, J, K) nominal ms per token
    delay_dev_ms: tuple                     # (I, J, K)
    error: tuple                            # (I, J, K)
    error_dev: tuple                        # (I, J, K)

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.query_types), len(self.models), len(self.gpu_tiers)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every numeric field as a float numpy array (for building the model)."""
        return {f.name: np.asarray(getattr(self, f.name), dtype=float) for f in fields(self)
                if f.name not in ("query_types", "models", "gpu_tiers")}

    def checksums(self) -> dict[str, float]:
        """Sums of the four uncertainty arrays (the reference's generator checksums)."""
        return {"delay_ms": float(np.sum(self.delay_ms)), "delay_dev_ms": float(np.sum(self.delay_dev_ms)),
                "error": float(np.sum(self.error)), "error_dev": float(np.sum(self.error_dev))}

    def to_json(self) -> str:
        """The instance as a JSON object, one key per field (what ``--write-instance`` writes)."""
        return json.dumps({f.name: _plain(getattr(self, f.name)) for f in fields(self)}, indent=1)


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _nested(array: np.ndarray) -> tuple:
    return tuple(_nested(a) for a in array) if array.ndim > 1 else tuple(float(v) for v in array)


def _uniform_each(ranges) -> np.ndarray:
    return np.array([np.random.uniform(low, high) for low, high in ranges])


def generate(seed: int = 42, gamma: float = 50.0) -> Instance:
    """The reference instance at ``seed`` (the default instance is seed 42, Gamma 50, i.e. the full worst case).

    Draws from numpy's legacy global RNG, as the reference does (this reseeds the global RNG)."""
    i_n, j_n, k_n = len(QUERY_TYPES), len(MODELS), len(GPU_TIERS)
    np.random.seed(seed)
    arrival = np.array([np.random.randint(low, high) for low, high in _ARRIVAL_RANGES])
    rental = np.array(_BASE_RENTAL) * np.random.uniform(0.8, 1.2, size=k_n)
    storage_price = np.random.uniform(0.001, 0.005)
    compute = _uniform_each(_COMPUTE_RANGES)
    data_size = _uniform_each(_TOKEN_SIZE_RANGES)
    delay_penalty = _uniform_each(_DELAY_PENALTY_RANGES)
    unmet_penalty = _uniform_each(_UNMET_PENALTY_RANGES)
    base_delay = _uniform_each(_BASE_DELAY_RANGES)
    base_error = _uniform_each(_BASE_ERROR_RANGES)
    # Delay ~ task complexity x model size x (reference TFLOPs / tier TFLOPs); error ~ task / model capability x
    # quantisation factor of the tier's precision.
    tflops = np.array(_GPU_TFLOPS, dtype=float)
    speed = tflops[0] / tflops
    delay = base_delay[:, None, None] * np.array(_DELAY_FACTOR_BY_MODEL)[None, :, None] * speed[None, None, :]
    precision = np.array([_PRECISION_ERROR_FACTOR[tier.rsplit("_", 1)[1]] for tier in GPU_TIERS])
    error = (base_error[:, None, None] / np.array(_CAPABILITY_BY_MODEL)[None, :, None]) * precision[None, None, :]
    delay_dev = delay * np.random.uniform(*_DEVIATION_RANGE, size=delay.shape)
    error_dev = error * np.random.uniform(*_DEVIATION_RANGE, size=error.shape)
    assert delay.shape == (i_n, j_n, k_n)
    return Instance(
        query_types=QUERY_TYPES, models=MODELS, gpu_tiers=GPU_TIERS, tp_degrees=TP_DEGREES,
        model_size_gb=tuple(float(v) for v in _MODEL_SIZE_GB), kv_gb_per_token=_KV_GB_PER_TOKEN,
        input_tokens=tuple(float(v) for v in _INPUT_TOKENS), output_tokens=tuple(float(v) for v in _OUTPUT_TOKENS),
        arrival_per_h=tuple(float(v) for v in arrival),
        gpu_memory_gb=tuple(float(v) for v in _GPU_MEMORY_GB), gpu_tflops=tuple(float(v) for v in _GPU_TFLOPS),
        rental_per_h=_nested(rental), storage_per_gb_h=float(storage_price), storage_capacity_gb=1000.0,
        compute_tflops_per_token=_nested(compute), data_gb_per_token=_nested(data_size),
        delay_penalty=_nested(delay_penalty), unmet_penalty=_nested(0.1 * unmet_penalty),
        budget=3000.0, horizon_h=12.0, delay_limit_ms=(1000.0, 1200.0, 800.0, 1500.0, 4000.0, 5000.0),
        error_limit=(0.04, 0.08, 0.03, 0.1, 0.12, 0.15), residency_h=0.1, unmet_cap=0.01, gamma=float(gamma),
        delay_ms=_nested(delay), delay_dev_ms=_nested(delay_dev), error=_nested(error), error_dev=_nested(error_dev))


_NAMES = ("query_types", "models", "gpu_tiers")
_BY_MODEL = ("model_size_gb", "kv_gb_per_token")
_BY_QUERY = ("input_tokens", "output_tokens", "arrival_per_h", "compute_tflops_per_token", "data_gb_per_token",
             "delay_penalty", "unmet_penalty", "delay_limit_ms", "error_limit")
_BY_TIER = ("gpu_memory_gb", "gpu_tflops", "rental_per_h")
_SCALARS = ("storage_per_gb_h", "storage_capacity_gb", "budget", "horizon_h", "residency_h", "unmet_cap", "gamma")
_CUBES = ("delay_ms", "delay_dev_ms", "error", "error_dev")


def _number(source: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"{source}: {name}: expected a finite number >= 0, got {value!r}")
    return float(value)


def _vector(source: str, name: str, value, length: int) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != length:
        raise InvalidInputError(f"{source}: {name}: expected a list of {length} numbers, got {value!r:.80}")
    return tuple(_number(source, f"{name}[{n}]", v) for n, v in enumerate(value))


def from_dict(data: dict, source: str = "instance") -> Instance:
    """An instance from its JSON object (the format ``to_json`` writes). Raises InvalidInputError naming the field
    and value when a key is missing or unknown, a name list is not a list of distinct strings, a vector or array
    has the wrong length or a value that is not a finite number >= 0, or a TP degree is not a positive integer."""
    if not isinstance(data, dict):
        raise InvalidInputError(f"{source}: expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(Instance)}
    missing = sorted(known - data.keys())
    if missing:
        raise InvalidInputError(f"{source}: missing keys: {', '.join(missing)}")
    unknown = sorted(data.keys() - known)
    if unknown:
        raise InvalidInputError(f"{source}: unknown keys: {', '.join(unknown)}")
    values: dict = {}
    for name in _NAMES:
        names = data[name]
        if (not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names)
                or len(set(names)) != len(names)):
            raise InvalidInputError(f"{source}: {name}: expected a non-empty list of distinct names, got {names!r:.80}")
        values[name] = tuple(names)
    i_n, j_n, k_n = (len(values[n]) for n in _NAMES)
    tp = data["tp_degrees"]
    if (not isinstance(tp, list) or not tp or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                                                      for n in tp) or len(set(tp)) != len(tp)):
        raise InvalidInputError(f"{source}: tp_degrees: expected distinct integers >= 1, got {tp!r}")
    values["tp_degrees"] = tuple(tp)
    for group, length in ((_BY_MODEL, j_n), (_BY_QUERY, i_n), (_BY_TIER, k_n)):
        for name in group:
            values[name] = _vector(source, name, data[name], length)
    for name in _SCALARS:
        values[name] = _number(source, name, data[name])
    if values["unmet_cap"] > 1:
        raise InvalidInputError(f"{source}: unmet_cap: expected a fraction in [0, 1], got {values['unmet_cap']!r}")
    for name in _CUBES:
        cube = data[name]
        if not isinstance(cube, list) or len(cube) != i_n:
            raise InvalidInputError(f"{source}: {name}: expected {i_n} x {j_n} x {k_n} nested lists")
        rows = []
        for i, plane in enumerate(cube):
            if not isinstance(plane, list) or len(plane) != j_n:
                raise InvalidInputError(f"{source}: {name}[{i}]: expected {j_n} lists of {k_n} numbers")
            rows.append(tuple(_vector(source, f"{name}[{i}][{j}]", row, k_n) for j, row in enumerate(plane)))
        values[name] = tuple(rows)
    return Instance(**values)


def load(path: str) -> Instance:
    """Read an instance from a JSON file; InvalidInputError names the file when it is missing or malformed."""
    if not os.path.exists(path):
        raise InvalidInputError(f"--instance {path!r}: no such file")
    try:
        data = datafiles.read_json(path)
    except DataFileError as err:
        raise InvalidInputError(f"--instance {path!r}: {err}") from None
    return from_dict(data, path)
