"""The three patch formats of the Kubernetes API, applied to plain JSON documents.

- JSON merge patch (RFC 7386, ``application/merge-patch+json``);
- JSON patch (RFC 6902, ``application/json-patch+json``), including the ``test`` operation;
- strategic merge patch (``application/strategic-merge-patch+json``): maps merge, lists of known object types
  merge by their merge key (containers and env by ``name``, ports by ``containerPort``...), other lists are
  replaced; the ``$patch`` (replace, delete, merge), ``$deleteFromPrimitiveList/`` and ``$setElementOrder/``
  directives are understood.

Every function returns a new document and raises PatchError when the patch cannot be applied.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

# Merge keys of the list fields that Kubernetes declares with patchStrategy "merge", by field name.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "imagePullSecrets": "name", "ports": "containerPort", "volumeMounts": "mountPath",
    "volumeDevices": "devicePath", "ownerReferences": "uid", "conditions": "type", "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey", "resourceClaims": "name",
}
_DIRECTIVE = "$patch"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
_ORDER = "$setElementOrder/"
_RETAIN = "$retainKeys"


class PatchError(ValueError):
    """A patch that is malformed or does not apply to the document."""


def patcher(patch: Any, patch_type: str) -> Callable[[Any], Any]:
    """A function applying ``patch`` of ``patch_type`` ("strategic", "merge" or "json") to a document."""
    apply = {"strategic": strategic_merge_patch, "merge": merge_patch, "json": json_patch}.get(patch_type)
    if apply is None:
        raise PatchError(f"unknown patch type {patch_type!r}")
    return lambda doc: apply(doc, patch)


def merge_patch(doc: Any, patch: Any) -> Any:
    """``doc`` with the RFC 7386 merge ``patch`` applied: objects merge, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(doc: dict, patch: Any) -> dict:
    """``doc`` with a strategic merge ``patch`` applied (see the module docstring for the rules)."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    merged = _merge_map(copy.deepcopy(doc), patch)
    if merged is None:
        raise PatchError("a strategic merge patch cannot delete the whole object")
    return merged


def _merge_map(original: dict, patch: dict) -> dict | None:
    directive = patch.get(_DIRECTIVE)
    if directive == "delete":
        return None
    body = {k: v for k, v in patch.items() if k != _DIRECTIVE and k != _RETAIN and not k.startswith(_ORDER)}
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in body.items() if not k.startswith(_DELETE_PRIMITIVE)}
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch directive {directive!r}")
    for key, value in body.items():
        if key.startswith(_DELETE_PRIMITIVE):
            field = key[len(_DELETE_PRIMITIVE):]
            if isinstance(original.get(field), list) and isinstance(value, list):
                original[field] = [item for item in original[field] if item not in value]
        elif value is None:
            original.pop(key, None)
        else:
            merged = _merge_value(key, original.get(key), value)
            if merged is None:
                original.pop(key, None)
            else:
                original[key] = merged
    return original


def _merge_value(key: str, original: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return _merge_map(original if isinstance(original, dict) else {}, value)
    if isinstance(value, list) and key in MERGE_KEYS and all(isinstance(v, dict) for v in value):
        return _merge_list(original if isinstance(original, list) else [], value, MERGE_KEYS[key])
    return copy.deepcopy(value)


def _merge_list(original: list, patch: list, merge_key: str) -> list:
    if any(item.get(_DIRECTIVE) == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if _DIRECTIVE not in item]
    result = copy.deepcopy(original)
    for item in patch:
        if merge_key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
        index = next((i for i, old in enumerate(result)
                      if isinstance(old, dict) and old.get(merge_key) == item[merge_key]), None)
        if item.get(_DIRECTIVE) == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_merge_map({}, item))
        else:
            result[index] = _merge_map(result[index], item)
    return result


def json_patch(doc: Any, operations: Any) -> Any:
    """``doc`` with the RFC 6902 ``operations`` applied in order; a failing ``test`` raises PatchError."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a JSON array of operations")
    result = copy.deepcopy(doc)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"malformed JSON patch operation: {operation!r}")
        result = _apply_operation(result, operation)
    return result


def _apply_operation(doc: Any, operation: dict) -> Any:
    op, path = operation["op"], operation["path"]
    if op in ("add", "replace", "test") and "value" not in operation:
        raise PatchError(f"operation {op} on {path} is missing its value")
    if op == "add":
        return _add(doc, _pointer(path), copy.deepcopy(operation["value"]))
    if op == "remove":
        return _remove(doc, _pointer(path))[0]
    if op == "replace":
        doc, _ = _remove(doc, _pointer(path))
        return _add(doc, _pointer(path), copy.deepcopy(operation["value"]))
    if op in ("move", "copy"):
        if "from" not in operation:
            raise PatchError(f"operation {op} on {path} is missing from")
        value = _get(doc, _pointer(operation["from"]))
        if op == "move":
            doc, value = _remove(doc, _pointer(operation["from"]))
        return _add(doc, _pointer(path), copy.deepcopy(value))
    if op == "test":
        if _get(doc, _pointer(path)) != operation["value"]:
            raise PatchError(f"testing value {path} failed: test failed")
        return doc
    raise PatchError(f"unknown JSON patch operation {op!r}")


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def _index(container: list, token: str, *, appending: bool = False) -> int:
    if appending and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) - (0 if appending else 1):
        raise PatchError(f"array index {index} out of bounds")
    return index


def _get(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(doc, dict) and token in doc:
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_index(doc, token)]
        else:
            raise PatchError(f"path /{'/'.join(tokens)} does not exist")
    return doc


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _get(doc, tokens[:-1])
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], appending=True), value)
    else:
        raise PatchError(f"cannot add at /{'/'.join(tokens)}: parent is not a container")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        return None, doc
    parent = _get(doc, tokens[:-1])
    if isinstance(parent, dict) and tokens[-1] in parent:
        return doc, parent.pop(tokens[-1])
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, tokens[-1]))
    raise PatchError(f"path /{'/'.join(tokens)} does not exist")
