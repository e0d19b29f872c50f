"""docs/contract.md and docs/model.md stay in step with the code: every setting with its default, every label,
every vLLM metric read, and every section the code cites."""

from __future__ import annotations

import re
from pathlib import Path

from services.collector import promql
from services.core import labels
from services.runtime.config import VARIABLES, load_config

DOCS = Path(__file__).resolve().parents[2] / "docs"
CONTRACT = (DOCS / "contract.md").read_text()
REPO = DOCS.parent


def _settings_table() -> dict[str, str]:
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.*?) \|", CONTRACT, flags=re.MULTILINE)
    return {name: default.strip("` ") for name, default in rows}


def test_every_setting_is_documented_once_with_the_default_the_code_uses():
    table = _settings_table()
    assert set(table) == set(VARIABLES)
    for variable, default in table.items():
        raw = "" if default == "(empty)" else default
        assert load_config({variable: raw}) == load_config({}), f"{variable}: documented default {default!r}"


def test_every_label_of_the_contract_is_documented():
    names = {value for key, value in vars(labels).items() if key.isupper() and isinstance(value, str)
             and value.startswith(labels.PREFIX) and value != labels.PREFIX and "=" not in value}
    assert len(names) >= 13
    missing = sorted(n for n in names if f"`{n}`" not in CONTRACT)
    assert missing == []


def test_every_vllm_metric_read_is_documented():
    names = {n for table in (promql.COUNTERS, promql.GAUGES) for alternatives in table.values() for n in alternatives}
    stems = {re.sub(r"_(sum|count)$", "", re.sub(r"_seconds_(sum|count)$", "_seconds", n)) for n in names}
    missing = sorted(s for s in stems if f"vllm:{s}" not in CONTRACT)
    assert missing == []


CITED = re.compile(r"docs/(contract|model)\.md (?:s|section )(\d+)")


def test_every_cited_section_exists_and_no_file_cites_the_unshipped_design_notes():
    sections = {page: set(re.findall(r"^## (\d+)\.", (DOCS / f"{page}.md").read_text(), flags=re.MULTILINE))
                for page in ("contract", "model")}
    files = [p for p in REPO.rglob("*") if p.suffix in (".py", ".yaml", ".md", ".toml") and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(REPO).parts)]
    cited, stale = 0, []
    for path in files:
        text = path.read_text(errors="replace")
        stale += [f"{path.relative_to(REPO)}: {m}" for m in re.findall(r"(?:ARCHITECTURE|QUEUEING)(?:\.md)?", text)
                  if path.name != "test_contract.py"]
        for page, number in CITED.findall(text):
            cited += 1
            assert number in sections[page], f"{path.relative_to(REPO)} cites docs/{page}.md s{number}"
    assert stale == []
    assert cited > 20
