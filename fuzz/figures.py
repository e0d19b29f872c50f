"""What a fuzz campaign counts: inputs tried, crashes, INTERNAL answers, absurd results or writes, and the first
few findings of each kind (enough to reproduce: the seed and case number are in each)."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from services.controller.report import table as text_table

KEEP = 5
"""Findings kept per kind (the counts cover all)."""


@dataclass
class Figures:
    """One campaign's counts; ``findings`` holds up to KEEP examples per kind."""

    target: str
    inputs: int = 0
    crashes: int = 0
    internal: int = 0
    absurd: int = 0
    elapsed_s: float = 0.0
    findings: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    """What the inputs led to (e.g. Deployments changed, refused, failed), to show the campaign reached deep."""

    def found(self, kind: str, text: str) -> None:
        """Count a finding of ``kind`` ("crashes", "internal" or "absurd") and keep its text if few so far."""
        setattr(self, kind, getattr(self, kind) + 1)
        kept = self.findings.setdefault(kind, [])
        if len(kept) < KEEP:
            kept.append(text[:500])

    def found_rpc_error(self, what: str, err: grpc.RpcError) -> None:
        """Count a gRPC error answer to the case ``what`` as an "internal" finding (its code and details)."""
        self.found("internal", f"{what}: {err.code().name} {(err.details() or '')[:200]}")

    @property
    def clean(self) -> bool:
        """No crash, no INTERNAL answer, no absurd result."""
        return self.crashes == self.internal == self.absurd == 0


def table(rows: list[Figures]) -> str:
    """The figures as a text table, then the kept findings."""
    header = ("target", "inputs", "crashes", "INTERNAL", "absurd", "seconds")
    text = [text_table(header, [(f.target, str(f.inputs), str(f.crashes), str(f.internal), str(f.absurd),
                                 f"{f.elapsed_s:.1f}") for f in rows])]
    for f in rows:
        if f.counts:
            text.append(f"{f.target}: " + ", ".join(f"{key} {value}" for key, value in sorted(f.counts.items())))
        for kind, examples in f.findings.items():
            text += [f"{f.target} {kind}: {example}" for example in examples]
    return "\n".join(text) + "\n"
