"""The emulated replica answers the request shapes GuideLLM sends to vLLM (its OpenAI backend: streamed
/v1/chat/completions with ``max_completion_tokens`` and content parts, /v1/completions with ``max_tokens``,
``stop: null``, ``ignore_eos``, ``stream_options`` with continuous usage), and the responses read the way
GuideLLM reads them (text from the deltas, the last ``usage`` seen) match the prompt as sent."""

from __future__ import annotations

import json

import pytest
import requests

from emulator.vllm import VllmServer
from emulator.vllmengine import EngineParams

PREFIX = "You are a helpful assistant answering briefly."
PROMPT = "Summarise the history of the printing press in Europe during the fifteenth century please"
STREAM_OPTIONS = {"include_usage": True, "continuous_usage_stats": True}


@pytest.fixture(scope="module")
def replica():
    server = VllmServer(EngineParams(alpha_ms=2, beta_ms=0.01, gamma_ms=0.001), "granite_13b").start()
    yield server
    server.stop()


def chat_body(output_tokens: int) -> dict:
    """GuideLLM's chat request: a system prefix, the user text as a list of parts, max_completion_tokens."""
    return {"model": "granite_13b", "stream": True, "stream_options": STREAM_OPTIONS,
            "max_completion_tokens": output_tokens, "stop": None, "ignore_eos": True,
            "messages": [{"role": "system", "content": PREFIX},
                         {"role": "user", "content": [{"type": "text", "text": PROMPT}]}]}


def text_body(output_tokens: int) -> dict:
    """GuideLLM's text-completion request."""
    return {"model": "granite_13b", "stream": True, "stream_options": STREAM_OPTIONS, "max_tokens": output_tokens,
            "stop": None, "ignore_eos": True, "prompt": PROMPT}


def read_stream(response: requests.Response, field: str) -> tuple[str, int, dict]:
    """As GuideLLM's handlers: concatenated text, number of chunks carrying text, the last usage seen."""
    texts, usage = [], {}
    for line in response.iter_lines(decode_unicode=True):
        if not line or not line.startswith("data:"):
            continue
        if line == "data: [DONE]":
            break
        data = json.loads(line[len("data:"):].strip())
        choice = (data.get("choices") or [{}])[0]
        text = (choice.get("delta") or {}).get("content") if field == "delta" else choice.get("text")
        if text:
            texts.append(text)
        usage = data.get("usage") or usage
    return "".join(texts), len(texts), usage


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize(("path", "body", "field", "prompt_words"), [
    pytest.param("/v1/chat/completions", chat_body(37), "delta", words(PREFIX) + words(PROMPT), id="chat"),
    pytest.param("/v1/completions", text_body(37), "text", words(PROMPT), id="text"),
])
def test_guidellm_requests_get_the_requested_output_and_usage_of_the_prompt_as_sent(replica, path, body, field,
                                                                                   prompt_words):
    with requests.post(replica.url + path, json=body, stream=True, timeout=30) as response:
        assert response.status_code == 200
        text, chunks, usage = read_stream(response, field)
    assert chunks == 37 and words(text) == 37
    assert usage == {"prompt_tokens": prompt_words, "completion_tokens": 37, "total_tokens": prompt_words + 37}


def test_usage_grows_token_by_token_with_continuous_usage_stats(replica):
    with requests.post(replica.url + "/v1/chat/completions", json=chat_body(5), stream=True, timeout=30) as response:
        lines = [json.loads(x[5:]) for x in response.iter_lines(decode_unicode=True)
                 if x.startswith("data: {")]
    assert [c["usage"]["completion_tokens"] for c in lines if c.get("choices")] == [1, 2, 3, 4, 5]


def test_max_completion_tokens_wins_over_max_tokens_in_chat(replica):
    body = {**chat_body(9), "max_tokens": 3, "stream": False}
    answer = requests.post(replica.url + "/v1/chat/completions", json=body, timeout=30).json()
    assert answer["usage"]["completion_tokens"] == 9
    assert words(answer["choices"][0]["message"]["content"]) == 9


def test_the_replica_counts_the_same_prompt_it_reports(replica):
    before = replica.metrics.render().decode()
    requests.post(replica.url + "/v1/chat/completions", json={**chat_body(4), "stream": False}, timeout=30).json()
    after = replica.metrics.render().decode()
    assert prompt_total(after) - prompt_total(before) == words(PREFIX) + words(PROMPT)


def prompt_total(exposition: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
               if line.startswith(("vllm:prompt_tokens_total", "vllm_prompt_tokens_total")))


@pytest.mark.parametrize(("change", "message"), [
    pytest.param(lambda b: b["messages"][1]["content"].append({"type": "image_url", "image_url": {"url": "x"}}),
                 "text-only", id="image-part"),
    pytest.param(lambda b: b.update(max_completion_tokens=0), "max_completion_tokens must be a positive integer",
                 id="zero-tokens"),
])
def test_what_the_emulated_model_cannot_do_is_a_400_naming_it(replica, change, message):
    body = {**chat_body(4), "stream": False}
    change(body)
    answer = requests.post(replica.url + "/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 400 and message in answer.json()["message"]
