"""The docs: generated parts equal what ``python -m devtools.render_docs`` renders, every relative link
resolves, every API error code and telemetry dimension is documented, and no machine path is committed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import render_docs
from serving import telemetry
from serving.openapi import ERROR_CODES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# Built from parts so that this file does not match itself.
MACHINE_PATHS = re.compile("|".join(re.escape(p) for p in ("/" + "work/", "/" + "home/", "../" + "shared")))
TMP_PATH = re.compile(r"(?<![\w.])/" + r"tmp/")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
NOT_TEXT = {".png", ".jpg", ".jpeg", ".gif", ".onnx", ".zip", ".gz", ".ico", ".pdf", ".joblib", ".woff"}


def _repository_files() -> list[Path]:
    """Tracked files plus untracked ones git does not ignore (what the next commit can hold)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def _doc_pages() -> list[Path]:
    return [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]


def test_generated_docs_match_what_the_renderer_renders():
    result = subprocess.run(
        [sys.executable, "-m", "devtools.render_docs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_every_generated_block_has_a_renderer():
    for page in sorted(DOCS.rglob("*.md")):
        for name in re.findall(r"<!-- generated:([\w-]+) -->", page.read_text(encoding="utf-8")):
            assert name in render_docs.BLOCKS, f"{page.relative_to(ROOT)}: unknown block {name}"


def test_no_machine_path_in_the_repository():
    found = []
    for path in _repository_files():
        relative = path.relative_to(ROOT).as_posix()
        if path.suffix in NOT_TEXT or relative.startswith(".ci/"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        found += [
            f"{relative}:{number}: {line.strip()[:120]}"
            for number, line in enumerate(text.splitlines(), 1)
            if MACHINE_PATHS.search(line)
        ]
    assert not found, "machine-local paths:\n" + "\n".join(found)


def test_no_temporary_path_in_the_docs_or_the_model_card():
    found = []
    for page in [*_doc_pages(), ROOT / "model" / "README.md"]:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if TMP_PATH.search(line):
                found.append(f"{page.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not found, "\n".join(found)


def test_every_relative_link_in_the_docs_points_to_a_file():
    broken = []
    for page in _doc_pages():
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
        for match in LINK.finditer(text):
            target = (match.group(1) or match.group(2)).split("#")[0]
            if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # an anchor on the same page, or a URL
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_api_reference_covers_every_error_code():
    text = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    assert set(render_docs.ERROR_DESCRIPTIONS) == set(ERROR_CODES)
    missing = [code for code in ERROR_CODES if f"`{code}`" not in text]
    assert not missing, f"docs/reference/api.md does not describe {missing}"


def test_the_events_reference_covers_every_event_and_dimension():
    text = (DOCS / "reference" / "events.md").read_text(encoding="utf-8")
    names = [
        value
        for name, value in vars(telemetry).items()
        if name.isupper()
        and isinstance(value, str)
        and (value in telemetry.EVENT_NAMES or re.fullmatch(r"[a-z_]+", value))
        and not name.endswith(("_ENV", "_NAME", "_ATTRIBUTE"))
        and not name.startswith("DEFAULT_")
    ]
    assert set(telemetry.EVENT_NAMES) <= set(names)
    missing = [value for value in names if f"`{value}`" not in text]
    assert not missing, f"docs/reference/events.md does not describe {missing}"


def test_the_docs_index_lists_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if p.name != "README.md"]
    missing = [page for page in pages if f"({page})" not in index]
    assert not missing, f"docs/README.md does not list {missing}"


@pytest.mark.parametrize(
    ("line", "printed"),
    [
        (
            "python -m training train --data-dir /srv/data --out reports/train --seed 13",
            "python -m training train --data-dir DATA --out reports/train --seed 13",
        ),
        (
            "python -m training train --data /srv/x/train.csv --feedback /srv/fb.csv --feedback-weight 3",
            "python -m training train --data train.csv --feedback fb.csv --feedback-weight 3",
        ),
    ],
)
def test_the_model_card_prints_no_machine_path(line, printed):
    from training.reporting.model_card import portable_command_line

    assert portable_command_line(line) == printed


def test_bicep_parser_reads_parameters_outputs_and_decorators():
    text = "\n".join(
        [
            "@description('How many.')",
            "@minValue(1)",
            "@maxValue(9)",
            "param count int = 3",
            "",
            "@allowed([",
            "  'PT5M'",
            "  'PT1H'",
            "])",
            "param window string = 'PT5M'",
            "@secure()",
            "param key string",
            "// The app's name.",
            "output name string = app.name",
        ]
    )
    params, outputs = render_docs.parse_bicep(text)
    assert [p["name"] for p in params] == ["count", "window", "key"]
    assert params[0]["description"] == "How many." and params[0]["constraints"] == "≥ 1; ≤ 9"
    assert params[1]["constraints"] == "one of PT5M, PT1H" and params[1]["default"] == "'PT5M'"
    assert params[2]["constraints"] == "secure" and params[2]["default"] == ""
    expected = {"name": "name", "type": "string", "value": "app.name", "description": "The app's name."}
    assert outputs == [expected]


def test_performance_page_survives_missing_result_files(monkeypatch, tmp_path):
    monkeypatch.setattr(render_docs, "RESULTS", tmp_path)
    (tmp_path / "radar.json").write_text('{"alerts": {"fired": 3, "quiet": true}}', encoding="utf-8")
    page = render_docs.performance_md()
    assert page.count("Not measured yet") == len(render_docs.SECTIONS)
    assert "`alerts.fired` | 3" in page
