"""The Dockerfile, checked without a Docker engine: what it copies exists and reaches the build context,
stubs are generated exactly as `make proto` does, pinned dependencies, a numeric non-root user."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib

from tests.manifests.conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")
IGNORED = [line.strip() for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
           if line.strip() and not line.startswith("#")]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _ignored(relative: str) -> bool:
    return any(fnmatch.fnmatch(relative, pattern.rstrip("/")) or relative.startswith(pattern.rstrip("/") + "/")
               for pattern in IGNORED)


def _copy_sources() -> list[str]:
    sources = []
    for keyword, args in instructions():
        if keyword == "COPY":
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            assert "--from" not in args, "a single-stage build copies only from the context"
            sources.extend(words[:-1])
    return sources


def test_every_copy_source_exists_in_the_repository_and_reaches_the_build_context():
    sources = _copy_sources()
    assert {"pyproject.toml", "constraints.txt", "proto/", "services/"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _ignored(source.rstrip("/")), f"{source} is excluded by .dockerignore"


def test_the_build_context_leaves_out_local_state_and_generated_stubs():
    for path in (".venv", ".git", "proto/types_pb2.py", "proto/types_pb2_grpc.py", "proto/types_pb2.pyi",
                 "services/core/__pycache__"):
        assert _ignored(path), path
    for path in ("proto/types.proto", "proto/__init__.py", "services/runtime/config.py"):
        assert not _ignored(path), path


def _makefile_protoc_options() -> str:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    return re.search(r"-m grpc_tools\.protoc (.*?) \$<", makefile).group(1)


def test_stubs_are_generated_with_the_makefile_protoc_options_and_no_post_edit():
    protoc = _makefile_protoc_options()
    (run,) = [args for keyword, args in instructions() if keyword == "RUN" and "grpc_tools.protoc" in args]
    assert run == f"python -m grpc_tools.protoc {protoc} proto/*.proto"
    assert "sed" not in DOCKERFILE and "sed " not in (REPO / "Makefile").read_text(encoding="utf-8")


def test_generated_stubs_import_each_other_through_the_proto_package(tmp_path):
    import shutil
    import subprocess
    import sys

    shutil.copytree(REPO / "proto", tmp_path / "proto", ignore=shutil.ignore_patterns("*_pb2*", "__pycache__"))
    protos = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "proto").glob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", *_makefile_protoc_options().split(), *protos],
                   cwd=tmp_path, check=True)
    stubs = sorted((tmp_path / "proto").glob("*_pb2*.py"))
    assert len(stubs) == 2 * len(protos)
    bare = [f"{s.name}: {line}" for s in stubs for line in s.read_text().splitlines()
            if re.match(r"import \w+_pb2", line)]
    assert bare == [], "a stub imports a sibling as a top-level module"


def test_dependencies_are_the_pinned_set_installed_non_editable():
    (run,) = [args for keyword, args in instructions() if keyword == "RUN" and "pip install" in args]
    words = shlex.split(run)
    assert words[words.index("-c") + 1].endswith("constraints.txt")
    assert "-e" not in words and "--editable" not in words
    assert "[dev]" not in run, "test tools stay out of the image"


def test_the_base_image_is_slim_python_matching_requires_python():
    (base,) = [args for keyword, args in instructions() if keyword == "FROM"]
    assert base == "python:3.11-slim"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"


def test_the_image_runs_as_the_numeric_non_root_user_of_the_deployment(deployment):
    (user,) = [args for keyword, args in instructions() if keyword == "USER"]
    uid, _, gid = user.partition(":")
    context = deployment["spec"]["template"]["spec"]["securityContext"]
    assert (int(uid), int(gid)) == (context["runAsUser"], context["runAsGroup"])
    assert int(uid) != 0


def test_the_image_finds_the_services_package_from_any_working_directory():
    env = " ".join(args for keyword, args in instructions() if keyword == "ENV")
    workdir = [args for keyword, args in instructions() if keyword == "WORKDIR"]
    assert workdir == ["/app"] and "PYTHONPATH=/app" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "the root filesystem is read-only"
