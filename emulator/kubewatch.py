"""Watch streams of the emulated Kubernetes API (``?watch=true``): one JSON event per chunk.

Without a resourceVersion (or with "0") a watch starts with an ADDED event for every existing object, then
follows the store's changes; with one it replays the kept changes after that version first (an ERROR event
with a 410 Expired Status when they are no longer kept). As with the real server's watch cache, an object
modified into a selection arrives as ADDED and one modified out of it as DELETED.
It ends after timeoutSeconds, when the client goes away or when the server stops.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from emulator.kuberoutes import Route, field_matcher
from emulator.kubeselect import SelectorError, labels_of, parse_label_selector
from emulator.kubestore import BadRequestError, KubeStore, StoreError

_POLL_S = 0.2
Event = tuple[str, dict]


def _selects(where: Route, query: Mapping[str, str]) -> Callable[[dict], bool]:
    try:
        labels = parse_label_selector(query.get("labelSelector"))
    except SelectorError as err:
        raise BadRequestError.of(str(err)) from err
    fields = field_matcher(query)
    namespace = where.namespace

    def selects(obj: dict) -> bool:
        in_namespace = not namespace or obj["metadata"].get("namespace") == namespace
        return in_namespace and labels(labels_of(obj)) and fields(obj)
    return selects


def _timeout(query: Mapping[str, str]) -> float | None:
    raw = query.get("timeoutSeconds")
    try:
        return float(raw) if raw else None
    except ValueError as err:
        raise BadRequestError.of(f"invalid timeoutSeconds {raw!r}") from err


def stream_watch(store: KubeStore, where: Route, query: Mapping[str, str], begin: Callable[[], None],
                 send: Callable[[bytes], None], stop: threading.Event) -> None:
    """Stream a watch: ``begin()`` once the request is valid, then ``send`` each event (one JSON line) until it ends.

    Raises StoreError, before calling ``begin``, for a request that is not valid.
    """
    selects, timeout_s = _selects(where, query), _timeout(query)
    begin()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    events: queue.Queue[Event] = queue.Queue()
    r = where.resource

    def on_event(event_type: str, api_version: str, plural: str, obj: dict, previous: dict | None) -> None:
        if (api_version, plural) != (r.api_version, r.plural):
            return
        selected, was_selected = selects(obj), previous is not None and selects(previous)
        if event_type == "MODIFIED" and selected != was_selected:
            event_type = "ADDED" if selected else "DELETED"  # moved into or out of the selection
            if not selected:  # the previous object, at the version of the change
                obj = {**previous, "metadata": {**previous["metadata"], "resourceVersion": obj["metadata"][
                    "resourceVersion"]}}
        elif not selected:
            return
        events.put((event_type, obj))

    since = query.get("resourceVersion") or "0"
    if since == "0":
        items, since = store.snapshot(r.api_version, r.plural, where.namespace, query.get("labelSelector"))
        for item in items:
            on_event("ADDED", r.api_version, r.plural, item, None)
    try:
        unsubscribe = store.subscribe(on_event, since=since, previous=True)
    except StoreError as err:
        send(_line("ERROR", err.status))
        return
    try:
        _pump(events, send, stop, deadline)
    finally:
        unsubscribe()


def _pump(events: queue.Queue[Event], send: Callable[[bytes], None], stop: threading.Event,
          deadline: float | None) -> None:
    while not stop.is_set():
        wait = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
        if wait <= 0:
            return
        try:
            event_type, obj = events.get(timeout=wait)
        except queue.Empty:
            continue
        send(_line(event_type, obj))


def _line(event_type: str, obj: Any) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"
