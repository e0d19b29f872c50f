"""The emulated vLLM replica: iteration timing, batching, queueing, KV limit, OpenAI shapes and metrics."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time

import pytest
import requests

from emulator.vllm import VllmServer, prompt_length
from emulator.vllmengine import EngineParams


@pytest.fixture
def vllm_replica(request):
    """A started replica with the EngineParams given by indirect parametrisation (or fast defaults)."""
    params = getattr(request, "param", None) or EngineParams(alpha_ms=20, beta_ms=0.1, gamma_ms=0.01)
    server = VllmServer(params, "granite_13b").start()
    yield server
    server.stop()


def stream_times(port: int, body: dict) -> list[float]:
    """Send one streaming completion; seconds from sending to each ``data:`` line (the [DONE] excluded)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    start = time.monotonic()
    conn.request("POST", "/v1/completions", json.dumps({**body, "stream": True}),
                 {"Content-Type": "application/json"})
    response = conn.getresponse()
    times = []
    for line in iter(response.readline, b""):
        if line.startswith(b"data: {"):
            times.append(time.monotonic() - start)
    conn.close()
    return times


def metric(text: str, name: str) -> float:
    """Sum of the samples of ``name`` in an exposition."""
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def test_single_request_ttft_and_itl_follow_the_perfparms(vllm_replica):
    times = stream_times(vllm_replica.port, {"prompt_tokens": 100, "max_tokens": 12})
    assert len(times) == 12
    prefill_ms = 20 + 0.1 * 100 + 0.01 * 100
    # the server's own TTFT and ITL are the iterations' (the engine keeps deadlines from the arrival on); the
    # client's add HTTP and thread hand-offs, which a loaded machine stretches
    ttft, itl = vllm_replica.metrics.ttft, vllm_replica.metrics.itl
    assert ttft.count == 1 and ttft.total * 1000 == pytest.approx(prefill_ms, rel=0.01)
    assert prefill_ms - 1 <= times[0] * 1000 < 2 * prefill_ms
    decode_ms = 20 + 0.1 + 0.01 * (100 + 6)  # the mean context over the 11 decodes
    assert itl.count == 11 and itl.total * 1000 / 11 == pytest.approx(decode_ms, rel=0.01)
    assert (times[-1] - times[0]) * 1000 / 11 == pytest.approx(decode_ms, rel=0.1)


def test_concurrent_requests_share_iterations(vllm_replica):
    threads = [threading.Thread(target=stream_times, args=(vllm_replica.port, {"prompt_tokens": 10, "max_tokens": 20}))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 8 requests of 20 tokens: one at a time would take 160 iterations; batched they share them
    assert 20 <= vllm_replica.engine.timing.iterations < 8 * 20 / 2


@pytest.mark.parametrize("vllm_replica", [EngineParams(alpha_ms=10, beta_ms=0, gamma_ms=0, max_num_seqs=2)],
                         indirect=True)
def test_max_num_seqs_makes_requests_wait(vllm_replica):
    threads = [threading.Thread(target=stream_times, args=(vllm_replica.port, {"prompt_tokens": 1, "max_tokens": 30}))
               for _ in range(5)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    text = requests.get(vllm_replica.url + "/metrics", timeout=5).text
    for thread in threads:
        thread.join()
    assert metric(text, "vllm:num_requests_running") == 2
    assert metric(text, "vllm:num_requests_waiting") == 3


@pytest.mark.parametrize("vllm_replica", [EngineParams(alpha_ms=10, beta_ms=0, gamma_ms=0, kv_cache_tokens=100)],
                         indirect=True)
def test_kv_cache_runs_out_preempts_and_recomputes_and_rejects_the_impossible(vllm_replica):
    # 6 blocks of 16 tokens: three 20-token prompts take 2 blocks each; at 33 tokens of context each needs a
    # third, so one is preempted, recomputed later, and still streams all its tokens
    results: list[list[float]] = []
    threads = [threading.Thread(target=lambda: results.append(
        stream_times(vllm_replica.port, {"prompt_tokens": 20, "max_tokens": 20}))) for _ in range(3)]
    for thread in threads:
        thread.start()
    too_long = requests.post(vllm_replica.url + "/v1/completions", json={"prompt_tokens": 90, "max_tokens": 20},
                             timeout=5)
    for thread in threads:
        thread.join()
    text = requests.get(vllm_replica.url + "/metrics", timeout=5).text
    assert [len(times) for times in results] == [20, 20, 20]
    assert metric(text, "vllm:num_preemptions_total") >= 1
    assert metric(text, "vllm:request_success_total") == 3
    assert metric(text, "vllm:kv_cache_usage_perc") == 0
    assert too_long.status_code == 400 and "does not fit the KV cache" in too_long.json()["message"]


def test_streaming_completion_has_openai_chunks_and_done(vllm_replica):
    response = requests.post(vllm_replica.url + "/v1/completions", stream=True, timeout=10, json={
        "model": "granite_13b", "prompt": "hello there", "max_tokens": 3, "stream": True,
        "stream_options": {"include_usage": True}})
    lines = [line for line in response.iter_lines() if line]
    assert response.headers["Content-Type"] == "text/event-stream"
    assert lines[-1] == b"data: [DONE]"
    chunks = [json.loads(line[len(b"data: "):]) for line in lines[:-1]]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:3]] == [None, None, "length"]
    assert chunks[0]["object"] == "text_completion" and chunks[0]["choices"][0]["text"]
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_streaming_chat_sends_deltas(vllm_replica):
    response = requests.post(vllm_replica.url + "/v1/chat/completions", stream=True, timeout=10, json={
        "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 2, "stream": True})
    chunks = [json.loads(line[6:]) for line in response.iter_lines() if line and line != b"data: [DONE]"]
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len(chunks) == 2


def test_non_streaming_responses_carry_usage(vllm_replica):
    text = requests.post(vllm_replica.url + "/v1/completions", timeout=10,
                         json={"prompt": "a b c d", "max_tokens": 4}).json()
    chat = requests.post(vllm_replica.url + "/v1/chat/completions", timeout=10,
                         json={"messages": [{"role": "user", "content": "x"}], "max_tokens": 2}).json()
    assert text["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    assert text["choices"][0]["finish_reason"] == "length"
    assert chat["object"] == "chat.completion" and chat["choices"][0]["message"]["role"] == "assistant"


def test_models_health_and_errors(vllm_replica):
    models = requests.get(vllm_replica.url + "/v1/models", timeout=5).json()
    assert [m["id"] for m in models["data"]] == ["granite_13b"]
    assert models["data"][0]["max_model_len"] == 1 << 20
    assert requests.get(vllm_replica.url + "/health", timeout=5).status_code == 200
    wrong = requests.post(vllm_replica.url + "/v1/completions", json={"model": "other", "prompt": "x"}, timeout=5)
    assert wrong.status_code == 404 and wrong.json()["object"] == "error"


def test_metrics_count_what_was_sent_with_vllm_names(vllm_replica):
    for _ in range(3):
        stream_times(vllm_replica.port, {"prompt_tokens": 7, "max_tokens": 5})
    response = requests.get(vllm_replica.url + "/metrics", timeout=5)
    text = response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'vllm:request_success_total{finished_reason="length",model_name="granite_13b"} 3.0' in text
    assert metric(text, "vllm:prompt_tokens_total") == 21
    assert metric(text, "vllm:generation_tokens_total") == 15
    assert metric(text, "vllm:time_to_first_token_seconds_count") == 3
    assert metric(text, "vllm:inter_token_latency_seconds_count") == 12
    assert metric(text, "vllm:e2e_request_latency_seconds_count") == 3
    assert metric(text, "vllm:request_queue_time_seconds_count") == 3
    assert metric(text, "vllm:request_prompt_tokens_sum") == 21
    assert metric(text, "vllm:request_prompt_tokens_count") == 3
    assert metric(text, "vllm:request_generation_tokens_sum") == 15
    assert 'vllm:request_generation_tokens_bucket{model_name="granite_13b",le="5.0"} 3' in text


def test_drain_finishes_in_flight_and_refuses_new_requests(vllm_replica):
    thread = threading.Thread(target=stream_times, args=(vllm_replica.port, {"prompt_tokens": 1, "max_tokens": 10}))
    thread.start()
    time.sleep(0.05)
    assert vllm_replica.drain(grace_s=5)
    thread.join()
    refused = requests.post(vllm_replica.url + "/v1/completions", json={"prompt": "x"}, timeout=5)
    assert refused.status_code == 503
    assert metric(vllm_replica.metrics.render().decode(), "vllm:request_success_total") == 1


@pytest.mark.parametrize(("body", "kind", "tokens"), [
    pytest.param({"prompt": "a b  c"}, "text", 3, id="words"),
    pytest.param({"prompt": [1, 2, 3, 4]}, "text", 4, id="token-ids"),
    pytest.param({"prompt": "a", "prompt_tokens": 128}, "text", 128, id="extension"),
    pytest.param({"messages": [{"content": "a b"}, {"content": "c"}]}, "chat", 3, id="chat"),
])
def test_prompt_length(body, kind, tokens):
    assert prompt_length(body, kind) == tokens


@pytest.mark.parametrize("vllm_replica", [EngineParams(alpha_ms=10, beta_ms=0, gamma_ms=0)], indirect=True)
def test_a_client_that_goes_away_is_aborted_and_frees_the_batch(vllm_replica):
    conn = http.client.HTTPConnection("127.0.0.1", vllm_replica.port, timeout=10)
    conn.request("POST", "/v1/completions", json.dumps({"prompt_tokens": 5, "max_tokens": 1000, "stream": True}),
                 {"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.readline().startswith(b"data: {")  # generating
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    deadline = time.monotonic() + 5
    while vllm_replica.engine.in_flight() and time.monotonic() < deadline:
        time.sleep(0.02)
    text = vllm_replica.metrics.render().decode()
    assert vllm_replica.engine.in_flight() == 0 and metric(text, "vllm:num_requests_running") == 0
    assert metric(text, "vllm:generation_tokens_total") < 100


@pytest.mark.slow
@pytest.mark.parametrize("vllm_replica", [EngineParams(alpha_ms=20, beta_ms=0, gamma_ms=0, max_num_seqs=1,
                                                       scheduling_policy="priority")], indirect=True)
def test_priority_replica_serves_a_more_important_request_first_under_load(vllm_replica):
    """--scheduling-policy priority: a request with priority 0 sent after one with priority 10 is served first
    when both wait behind a running request; FCFS within one priority."""
    done: dict[str, float] = {}

    def send(name: str, priority: int, tokens: int) -> None:
        times = stream_times(vllm_replica.port, {"prompt_tokens": 1, "max_tokens": tokens, "priority": priority})
        assert times, name
        done[name] = time.monotonic()

    threads = [threading.Thread(target=send, args=("busy", 5, 15))]
    threads[0].start()
    time.sleep(0.08)
    for name, priority in (("low", 10), ("high", 0)):
        threads.append(threading.Thread(target=send, args=(name, priority, 3)))
        threads[-1].start()
        time.sleep(0.04)
    for thread in threads:
        thread.join()
    assert done["busy"] < done["high"] < done["low"]


def test_a_priority_on_an_fcfs_replica_is_refused_as_vllm_does(vllm_replica):
    refused = requests.post(vllm_replica.url + "/v1/completions", timeout=5,
                            json={"prompt_tokens": 1, "max_tokens": 1, "priority": 3})
    assert refused.status_code == 400 and "Priority scheduling is not enabled" in refused.json()["message"]
    bad = requests.post(vllm_replica.url + "/v1/completions", timeout=5,
                        json={"prompt_tokens": 1, "max_tokens": 1, "priority": "high"})
    assert bad.status_code == 400 and "priority" in bad.json()["message"]
    assert requests.post(vllm_replica.url + "/v1/completions", timeout=5,
                         json={"prompt_tokens": 1, "max_tokens": 1, "priority": 0}).status_code == 200
