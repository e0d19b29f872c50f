"""The emulated cluster's state: a thread-safe in-memory object store with etcd-like resource versions.

Every write takes the next value of one global counter as the object's metadata.resourceVersion, is checked
against a resourceVersion the caller sent (409 Conflict when stale) and is announced, in commit order, to the
subscribers (the watch streams of the API server, the kubelet-like reconciler). Deleting an object deletes its
dependents (objects whose ownerReferences name it) like the garbage collector's background propagation.
Writing into a namespace that does not exist creates it (a real API server answers 404 there).
"""

from __future__ import annotations

import collections
import copy
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from emulator import kubepatch
from emulator.kubeerrors import (
    AlreadyExistsError,
    BadRequestError,
    ConflictError,
    GoneError,
    InvalidError,
    NotFoundError,
    StoreError,
)
from emulator.kuberesources import Resource, find_resource
from emulator.kubeselect import SelectorError, labels_of, parse_label_selector
from emulator.kubevalidate import admit_write, apply_defaults, assign_name, validate

__all__ = ["AlreadyExistsError", "BadRequestError", "ConflictError", "GoneError", "InvalidError", "KubeStore",
           "NotFoundError", "StoreError"]

_log = logging.getLogger(__name__)
Callback = Callable[[str, str, str, dict], None]
Event = tuple[int, str, str, str, dict, dict | None]  # version, type, api_version, plural, object, previous


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeStore:
    """Objects by (api_version, plural) and (namespace, name); every method is thread-safe.

    Subscriber callbacks run in commit order, after the store's lock is released, on the writing thread; a
    callback may write to the store (its events follow the current one) but must not wait for another thread
    that writes.
    """

    def __init__(self, history: int = 4096) -> None:
        self._lock = threading.RLock()
        self._dispatch_lock = threading.RLock()
        self._objects: dict[tuple[str, str], dict[tuple[str, str], dict]] = collections.defaultdict(dict)
        self._version = 0
        self._dispatched = 0
        self._history: collections.deque[Event] = collections.deque(maxlen=history)
        self._pending: collections.deque[Event] = collections.deque()
        self._subscribers: list[tuple[Callable[..., None], bool]] = []
        self._local = threading.local()
        self.create("v1", "namespaces", None, {"metadata": {"name": "default"}})

    @property
    def resource_version(self) -> str:
        """The resourceVersion of the latest write."""
        with self._lock:
            return str(self._version)

    def create(self, api_version: str, plural: str, namespace: str | None, obj: dict) -> dict:
        """Store a new object and return it with its metadata filled; AlreadyExistsError when the name exists."""
        resource = _resource(api_version, plural)
        new = copy.deepcopy(obj)
        assign_name(new)
        meta = new.setdefault("metadata", {})
        namespace = _scope(resource, namespace, meta.get("namespace"))
        apply_defaults(resource, new)
        validate(resource, new)
        with self._lock:
            bucket = self._objects[(api_version, plural)]
            if (namespace or "", meta["name"]) in bucket:
                raise AlreadyExistsError.of(resource, meta["name"])
            if namespace:
                self._ensure_namespace(namespace)
            meta.pop("resourceVersion", None)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
            if namespace:
                meta["namespace"] = namespace
            if resource.has_generation:
                meta["generation"] = 1
            result = self._commit("ADDED", resource, new)
        self._dispatch()
        return result

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict:
        """A deep copy of one object; NotFoundError when absent."""
        resource = _resource(api_version, plural)
        with self._lock:
            return copy.deepcopy(self._current(resource, namespace, name))

    def list(self, api_version: str, plural: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict]:
        """Deep copies of the objects in ``namespace`` (None: all) whose labels match ``label_selector``."""
        return self.snapshot(api_version, plural, namespace, label_selector)[0]

    def snapshot(self, api_version: str, plural: str, namespace: str | None = None,
                 label_selector: str | None = None) -> tuple[list[dict], str]:
        """Like list(), with the resourceVersion the listing is consistent with; BadRequestError on a bad selector."""
        _resource(api_version, plural)
        try:
            matches = parse_label_selector(label_selector)
        except SelectorError as err:
            raise BadRequestError.of(str(err)) from err
        with self._lock:
            bucket = self._objects.get((api_version, plural), {})
            items = [copy.deepcopy(obj) for (ns, _), obj in sorted(bucket.items())
                     if (not namespace or ns == namespace) and matches(labels_of(obj))]
            return items, str(self._version)

    def update(self, api_version: str, plural: str, namespace: str | None, name: str, obj: dict) -> dict:
        """Replace an object (its status is kept); ConflictError when ``obj`` carries a stale resourceVersion."""
        return self._write(_resource(api_version, plural), namespace, name, lambda current: obj, status_only=False)

    def patch(self, api_version: str, plural: str, namespace: str | None, name: str, patch: Any,
              patch_type: str) -> dict:
        """Apply a "strategic", "merge" or "json" patch; InvalidError when it does not apply."""
        try:
            change = kubepatch.patcher(patch, patch_type)
        except kubepatch.PatchError as err:
            raise BadRequestError.of(str(err)) from err
        return self._write(_resource(api_version, plural), namespace, name, change, status_only=False)

    def update_status(self, api_version: str, plural: str, namespace: str | None, name: str, status: dict) -> dict:
        """Replace only the status of an object; the generation does not change."""
        return self._write(_resource(api_version, plural), namespace, name, lambda current: {"status": status},
                           status_only=True)

    def write_status(self, api_version: str, plural: str, namespace: str | None, name: str,
                     change: Callable[[dict], dict]) -> dict:
        """Take the status from ``change(current object)`` (checked against a resourceVersion it carries)."""
        return self._write(_resource(api_version, plural), namespace, name, change, status_only=True)

    def write(self, api_version: str, plural: str, namespace: str | None, name: str,
              change: Callable[[dict], dict]) -> dict:
        """Replace an object with ``change(current object)``, atomically (the scale subresource uses this)."""
        return self._write(_resource(api_version, plural), namespace, name, change, status_only=False)

    def delete(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict:
        """Remove an object and, in the background sense, every object it owns; returns the deleted object."""
        resource = _resource(api_version, plural)
        with self._lock:
            obj = self._current(resource, namespace, name)
            result = self._remove(resource, obj)
        self._dispatch()
        return result

    def subscribe(self, callback: Callback, since: str | None = None, *, previous: bool = False
                  ) -> Callable[[], None]:
        """Call ``callback(event_type, api_version, plural, obj)`` on every later write; returns unsubscribe.

        With ``since`` (a resourceVersion) the kept events after it are replayed first, exactly once and in
        order; GoneError when they are no longer kept. With ``previous`` the callback gets a fifth argument:
        the object before a MODIFIED write (None for other events).
        """
        entry = (callback, previous)
        with self._dispatch_lock:
            with self._lock:
                replay = self._replay(since) if since is not None else []
                self._subscribers.append(entry)
            for event in replay:
                _deliver(entry, event)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)
        return unsubscribe

    def _replay(self, since: str) -> list[Event]:
        try:
            start = int(since or 0)
        except ValueError as err:
            raise BadRequestError.of(f"invalid resource version {since!r}") from err
        kept = [e for e in self._history if start < e[0] <= self._dispatched]
        oldest = self._history[0][0] if self._history else self._version + 1
        if start and len(self._history) == self._history.maxlen and start < oldest - 1:
            raise GoneError.of(since)
        return kept

    def _write(self, resource: Resource, namespace: str | None, name: str, change: Callable[[dict], dict],
               status_only: bool) -> dict:
        with self._lock:
            current = self._current(resource, namespace, name)
            try:
                wanted = copy.deepcopy(change(copy.deepcopy(current)))
            except kubepatch.PatchError as err:
                raise InvalidError.of("", "", [("FieldValueInvalid", "patch", str(err))]) from err
            if not isinstance(wanted, dict):
                raise BadRequestError.of("the object must be a JSON object")
            sent = (wanted.get("metadata") or {}).get("resourceVersion")
            if sent and sent != current["metadata"]["resourceVersion"]:
                raise ConflictError.of(resource, name)
            wanted_name = (wanted.get("metadata") or {}).get("name")
            if wanted_name and wanted_name != name:
                raise BadRequestError.of(f"the name of the object ({wanted_name}) does not match the name on "
                                         f"the URL ({name})")
            new = admit_write(resource, current, wanted, status_only)
            if new == current:
                return copy.deepcopy(current)
            result = self._commit("MODIFIED", resource, new)
        self._dispatch()
        return result

    def _current(self, resource: Resource, namespace: str | None, name: str) -> dict:
        key = ((namespace or "") if resource.namespaced else "", name)
        obj = self._objects.get((resource.api_version, resource.plural), {}).get(key)
        if obj is None:
            raise NotFoundError.of(resource, name)
        return obj

    def _ensure_namespace(self, namespace: str) -> None:
        namespaces = _resource("v1", "namespaces")
        if ("", namespace) not in self._objects[("v1", "namespaces")]:
            new = {"metadata": {"name": namespace, "uid": str(uuid.uuid4()), "creationTimestamp": _now()}}
            apply_defaults(namespaces, new)
            self._commit("ADDED", namespaces, new)

    def _commit(self, event_type: str, resource: Resource, obj: dict) -> dict:
        self._version += 1
        obj = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        obj["metadata"]["resourceVersion"] = str(self._version)
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        bucket = self._objects[(resource.api_version, resource.plural)]
        previous = bucket.get(key) if event_type == "MODIFIED" else None
        if event_type == "DELETED":
            bucket.pop(key, None)
        else:
            bucket[key] = obj
        event = (self._version, event_type, resource.api_version, resource.plural, copy.deepcopy(obj), previous)
        self._history.append(event)
        self._pending.append(event)
        return copy.deepcopy(obj)

    def _remove(self, resource: Resource, obj: dict) -> dict:
        result = self._commit("DELETED", resource, copy.deepcopy(obj))
        uid = obj["metadata"]["uid"]
        for (api_version, plural), bucket in list(self._objects.items()):
            for key, dependent in list(bucket.items()):
                if key not in bucket:
                    continue
                owners = {ref.get("uid") for ref in dependent["metadata"].get("ownerReferences") or ()}
                if uid in owners and not owners & self._live_uids():
                    self._remove(_resource(api_version, plural), dependent)
        return result

    def _live_uids(self) -> set[str]:
        return {obj["metadata"]["uid"] for bucket in self._objects.values() for obj in bucket.values()}

    def _dispatch(self) -> None:
        if getattr(self._local, "dispatching", False):
            return
        with self._dispatch_lock:
            self._local.dispatching = True
            try:
                while True:
                    with self._lock:
                        if not self._pending:
                            return
                        event = self._pending.popleft()
                        self._dispatched = event[0]
                        subscribers = list(self._subscribers)
                    for entry in subscribers:
                        try:
                            _deliver(entry, event)
                        except Exception:  # noqa: BLE001 - one failing subscriber never stops the others
                            _log.exception("store_subscriber_failed")
            finally:
                self._local.dispatching = False


def _deliver(entry: tuple[Callable[..., None], bool], event: Event) -> None:
    callback, with_previous = entry
    _, event_type, api_version, plural, obj, previous = event
    if with_previous:
        callback(event_type, api_version, plural, copy.deepcopy(obj), copy.deepcopy(previous))
    else:
        callback(event_type, api_version, plural, copy.deepcopy(obj))


def _resource(api_version: str, plural: str) -> Resource:
    resource = find_resource(api_version, plural)
    if resource is None:
        raise NotFoundError.of(Resource(api_version, plural, ""), "")
    return resource


def _scope(resource: Resource, namespace: str | None, in_body: str | None) -> str | None:
    if not resource.namespaced:
        return None
    if namespace and in_body and namespace != in_body:
        raise BadRequestError.of("the namespace of the provided object does not match the namespace sent on the "
                                 "request")
    return namespace or in_body or "default"
