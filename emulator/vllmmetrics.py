"""vLLM's Prometheus metrics for one emulated replica, rendered in the classic text format 0.0.4.

The names are vLLM's (``vllm:`` prefix, every sample labelled ``model_name``; the success counter also
``finished_reason`` like vLLM). We render the text ourselves and serve it as ``text/plain; version=0.0.4``:
that format has no name escaping, so a Prometheus 2.x server stores ``vllm:request_success_total`` exactly
as written (docs/contract.md s4 explains how the newer prometheus_client negotiation can turn the colon into
an underscore). Histogram buckets are vLLM's defaults for these metrics.
"""

from __future__ import annotations

import bisect
import math
import threading

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TTFT_BUCKETS_S = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                  20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                 40.0, 80.0)
TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
"""vLLM's buckets of the per-request prompt and generation token histograms (1-2-5 steps)."""
REQUEST_BUCKETS_S = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                     240.0, 480.0, 960.0, 1920.0, 7680.0)


class Histogram:
    """A cumulative histogram (bucket counts, sum, count); not thread-safe on its own."""

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help_text, self.buckets = name, help_text, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Add one observation."""
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def render(self, labels: str) -> list[str]:
        """Exposition lines for this histogram with ``labels`` (already formatted, no braces)."""
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} histogram"]
        cumulative = 0
        for bound, count in zip((*self.buckets, math.inf), self.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == math.inf else repr(float(bound))
            lines.append(f'{self.name}_bucket{{{labels},le="{le}"}} {cumulative}')
        lines.append(f"{self.name}_sum{{{labels}}} {self.total!r}")
        lines.append(f"{self.name}_count{{{labels}}} {self.count}")
        return lines


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class VllmMetrics:
    """The counters, gauges and histograms of one replica; thread-safe; ``render()`` gives the exposition."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self.kv_usage = 0.0
        self.success = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.preemptions = 0
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                              TTFT_BUCKETS_S)
        self.itl = Histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                             ITL_BUCKETS_S)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds",
                             "Histogram of e2e request latency in seconds.", REQUEST_BUCKETS_S)
        self.queue = Histogram("vllm:request_queue_time_seconds",
                               "Histogram of time spent in WAITING phase for request.", REQUEST_BUCKETS_S)
        self.request_prompt = Histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.",
                                        TOKEN_BUCKETS)
        self.request_generation = Histogram("vllm:request_generation_tokens",
                                            "Number of generation tokens processed.", TOKEN_BUCKETS)

    def set_state(self, running: int, waiting: int, kv_usage: float) -> None:
        """Set the gauges: requests running and waiting, KV-cache usage as a fraction (0..1)."""
        with self._lock:
            self.running, self.waiting, self.kv_usage = running, waiting, kv_usage

    def on_scheduled(self, queue_s: float, prompt_tokens: int) -> None:
        """A request left the queue and its prompt is prefilled."""
        with self._lock:
            self.queue.observe(queue_s)
            self.prompt_tokens += prompt_tokens

    def on_first_token(self, ttft_s: float) -> None:
        """A request produced its first token ``ttft_s`` after arriving."""
        with self._lock:
            self.ttft.observe(ttft_s)
            self.generation_tokens += 1

    def on_token(self, itl_s: float) -> None:
        """A request produced a later token ``itl_s`` after its previous one."""
        with self._lock:
            self.itl.observe(itl_s)
            self.generation_tokens += 1

    def on_preempted(self) -> None:
        """A running request was preempted (its KV blocks freed, to be recomputed)."""
        with self._lock:
            self.preemptions += 1

    def on_finished(self, e2e_s: float, output_tokens: int, prompt_tokens: int = 0) -> None:
        """A request finished (its length limit) ``e2e_s`` after arriving, with ``prompt_tokens`` in and
        ``output_tokens`` out (the token counters were advanced as they were processed; the per-request
        histograms are observed here, at completion, as vLLM does)."""
        with self._lock:
            self.e2e.observe(e2e_s)
            self.request_prompt.observe(prompt_tokens)
            self.request_generation.observe(output_tokens)
            self.success += 1

    def render(self) -> bytes:
        """The whole exposition in text format 0.0.4."""
        labels = f'model_name="{_escape(self.model_name)}"'
        with self._lock:
            lines = [*_sample("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
                              labels, self.running),
                     *_sample("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
                              labels, self.waiting),
                     *_sample("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
                              labels, self.kv_usage),
                     *_sample("vllm:request_success_total", "counter", "Count of successfully processed requests.",
                              f'finished_reason="length",{labels}', self.success),
                     *_sample("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
                              labels, self.prompt_tokens),
                     *_sample("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
                              labels, self.generation_tokens),
                     *_sample("vllm:num_preemptions_total", "counter", "Cumulative number of preemption from the "
                              "engine.", labels, self.preemptions)]
            for histogram in (self.ttft, self.itl, self.e2e, self.queue, self.request_prompt,
                              self.request_generation):
                lines.extend(histogram.render(labels))
        return ("\n".join(lines) + "\n").encode()


def _sample(name: str, kind: str, help_text: str, labels: str, value: float) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{{{labels}}} {float(value)!r}"]
