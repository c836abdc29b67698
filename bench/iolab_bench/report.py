"""report.py: a run, a machine's runs, or many machines as one page you open in a browser
(make report; make bench ends with it).

What RESULTS names, and how each is recognised:

  run folder          has manifest.json (results/runs/<stamp>-<label>/, results/latest,
                      results/reference/<machine>/<scenario>/)
  machine folder      not a run folder, and at least one folder directly inside it is one
                      (results/reference/<machine>/, results/runs/, the notebooks' fixture run)
  folder of machines  neither, and at least one folder directly inside it is a machine folder
                      (results/reference/, a class's hand-ins: one folder per student's machine)

A run or machine folder gets report.html: the machine manifest (CPU, kernel, CPU accounting,
mitigations, placement, offered rate), each run's summary table (the estimate with its 95%
interval when the summary has one, else the median and the spread of the repeats; invalid
figures shaded, their reasons as numbered footnotes), every chart in charts/ (and the ledger's
claims.png) embedded with its CSV linked, the executed notebooks (notebooks/*.html, written by
make charts), the claims ledger evaluated on the folder (bench/iolab_bench/claims.py), and links
to the raw files. A machine folder shows the newest run of each scenario, as the charts and the
ledger use them. A folder of machines gets report.html with the machines in columns (each
model's CPU per request and saturation ratio to the baseline, each claim's verdict, the
manifests), and each machine folder its own report.html.

Every page is one self-contained file: images are data URIs, there is no script and nothing is
fetched from the network; the links are relative paths to the files beside it. Standard library
only (the ledger's evaluation too).

Usage: bench/report.py [--results results/latest]
"""

import argparse
import base64
import datetime
import html
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import quote

from . import ROOT

RUN, MACHINE, MACHINES = "run folder", "machine folder", "folder of machine folders"
REPORT = "report.html"
# What a metric of harness/summary.json is, as the table's column header says it.
METRIC_LABELS = {
    "rps": "requests/s", "server_cpu_us": "server CPU µs/req",
    "server_user_us": "server user CPU µs/req", "server_sys_us": "server system CPU µs/req",
    "client_cpu_us": "client CPU µs/req", "syscalls_per_req": "system calls/req",
    "ctx_switches_per_req": "context switches/req", "allocs_per_req": "allocations/req",
    "p50_us": "p50 latency µs", "p99_us": "p99 latency µs",
    "user_kb_per_conn": "user KB/connection", "kernel_stack_kb_per_conn": "kernel stack KB/conn",
    "instructions_per_req": "instructions/req",
}
POINT_ORDER = ("fixed_rate", "saturation", "closed_loop", "memory", "cache")
# The run the side-by-side page takes each model's costs from, in this order of preference.
SIDE_BY_SIDE_SCENARIOS = ("models", "quick")
REFERENCE_SERVERS = ("nginx", "gin", "nethttp")
VERDICT_CLASS = {"holds": "ok", "does not hold": "fail"}


class ReportError(Exception):
    """RESULTS is not something a report can be made of (the message says why)."""


# ---- what RESULTS is -----------------------------------------------------------------------

def is_run(path: Path) -> bool:
    return (path / "manifest.json").is_file()


def _children(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def is_machine(path: Path) -> bool:
    return not is_run(path) and any(is_run(c) for c in _children(path))


def layout(path: str | Path) -> str:
    """RUN, MACHINE or MACHINES; raises ReportError for anything else."""
    p = Path(path)
    if not p.is_dir():
        raise ReportError(f"{p} is not a folder (make bench writes results/latest)")
    if is_run(p):
        return RUN
    if is_machine(p):
        return MACHINE
    if any(is_machine(c) for c in _children(p)):
        return MACHINES
    raise ReportError(f"{p} holds no run folder (a folder with manifest.json), directly or one "
                      f"level down")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class RunInfo:
    path: Path
    manifest: dict[str, Any]
    summary: list[dict[str, Any]] = field(default_factory=list)

    @property
    def scenario(self) -> str:
        return str(self.manifest.get("scenario") or "?")

    @property
    def started(self) -> str:
        return str(self.manifest.get("started") or "")


def load_run(path: Path) -> RunInfo:
    manifest = _read_json(path / "manifest.json")
    summary = _read_json(path / "harness" / "summary.json")
    return RunInfo(path, manifest if isinstance(manifest, dict) else {},
                   summary if isinstance(summary, list) else [])


def newest_per_scenario(folder: Path) -> tuple[list[RunInfo], list[RunInfo]]:
    """(shown, older): the newest run of each scenario directly in `folder`, and the rest."""
    runs = sorted((load_run(c) for c in _children(folder) if is_run(c)),
                  key=lambda r: (r.started, r.path.name), reverse=True)
    shown: dict[str, RunInfo] = {}
    older = []
    for r in runs:
        if r.scenario in shown:
            older.append(r)
        else:
            shown[r.scenario] = r
    order = sorted(shown.values(), key=lambda r: (r.scenario != "quick", r.scenario))
    return order, older


# ---- HTML helpers ---------------------------------------------------------------------------

def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def href(target: Path, page_dir: Path) -> str:
    """A relative link from a page in page_dir to target, escaped for an attribute."""
    try:
        rel = target.resolve().relative_to(page_dir.resolve())
        text = rel.as_posix()
    except ValueError:
        text = Path(os.path.relpath(target.resolve(), page_dir.resolve())).as_posix()
    return esc(quote(text))


def shown_path(path: Path) -> str:
    """A folder as the page names it: relative to the repository when inside it."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def link(target: Path, page_dir: Path, text: str | None = None) -> str:
    return f'<a href="{href(target, page_dir)}">{esc(text or target.name)}</a>'


def fmt(value: object) -> str:
    """Three significant digits; thousands separated; '-' for no figure."""
    if value is None:
        return "-"
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if v != v:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if v == 0:
        return "0"
    return f"{v:.3g}"


def table(header: Iterable[str] | None, rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A table (cells already HTML) in a container that scrolls sideways on a narrow screen."""
    head = "<thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead>" \
        if header is not None else ""
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<div class="scroll"><table class="{cls}">{head}'
            f"<tbody>\n{body}\n</tbody></table></div>")


class Footnotes:
    """Reasons for invalid figures, numbered once per page in order of first use."""

    def __init__(self) -> None:
        self.notes: dict[str, int] = {}

    def ref(self, reason: str) -> str:
        return self.refs([reason])

    def refs(self, reasons: Iterable[str]) -> str:
        """Superscript links to the notes of these reasons, e.g. '3,4'; '' for none."""
        numbers = [self.notes.setdefault(r, len(self.notes) + 1) for r in reasons]
        if not numbers:
            return ""
        links = ",".join(f'<a class="fn" href="#fn{n}">{n}</a>' for n in numbers)
        return f"<sup>{links}</sup>"

    def html(self) -> str:
        if not self.notes:
            return "<p>Every figure on this page is valid.</p>"
        items = "\n".join(f'<li id="fn{n}">{esc(reason)}</li>' for reason, n in self.notes.items())
        return f'<h2 id="notes">Why figures are not valid</h2>\n<ol class="notes">\n{items}\n</ol>'


CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1c1c1c;
background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:12px 16px 48px}
h1{font-size:1.5em;margin:.4em 0}
h2{font-size:1.25em;margin:1.6em 0 .4em;border-bottom:1px solid #ccc}
h3{font-size:1.05em;margin:1.2em 0 .3em}
p,li,dd,figcaption{overflow-wrap:anywhere}
td,th{overflow-wrap:break-word}
.scroll{overflow-x:auto;max-width:100%;margin:.4em 0 1em;border:1px solid #ddd;background:#fff}
table{border-collapse:collapse;font-size:.88em}
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f0f0f0;position:sticky;top:0}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.bad{background:#fdecea}
.iv{color:#555;font-size:.85em;display:block}
.ok{color:#1b5e20;font-weight:600}.fail{color:#b71c1c;font-weight:600}.other{color:#555}
figure{margin:1em 0;background:#fff;border:1px solid #ddd;padding:6px}
figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:.85em;color:#444}
.muted{color:#666;font-size:.9em}
nav{display:flex;flex-wrap:wrap;gap:.2em .9em;margin:.5em 0}
ul.files{columns:2 280px;font-size:.9em}
sup a.fn{text-decoration:none}
code{font-size:.92em;overflow-wrap:anywhere}
details{margin:.3em 0}
"""


def page(title: str, body: str) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{CSS}</style></head>\n<body><main>\n{body}\n"
            f'<p class="muted">Written by <code>make report</code> (bench/iolab_bench/report.py) '
            f"at {stamp}. One file: the images are embedded, nothing is fetched.</p>\n"
            f"</main></body></html>\n")


# ---- the machine manifest -------------------------------------------------------------------

def machine_name(m: dict[str, Any]) -> str:
    cpus = m.get("cpus_online") or "?"
    try:
        count: int | str = sum(int(b or a) - int(a) + 1 for a, _, b in
                               (part.partition("-") for part in str(cpus).split(",")))
    except ValueError:
        count = "?"
    return f"{m.get('cpu_model') or 'unknown CPU'}, {count} CPUs, Linux {m.get('kernel', '?')}"


def mitigations_html(m: dict[str, Any]) -> str:
    mit = m.get("mitigations")
    if not isinstance(mit, dict) or not mit:
        return "not recorded"
    vulnerable = [k for k, v in mit.items() if str(v).startswith("Vulnerable")]
    mitigated = [k for k, v in mit.items() if str(v).startswith("Mitigation")]
    summary = (f"{len(mitigated)} mitigated, {len(vulnerable)} vulnerable"
               + (f" ({', '.join(vulnerable)})" if vulnerable else "")
               + f", {len(mit) - len(mitigated) - len(vulnerable)} not affected")
    items = "".join(f"<li><code>{esc(k)}</code>: {esc(v)}</li>" for k, v in sorted(mit.items()))
    return f"<details><summary>{esc(summary)}</summary><ul>{items}</ul></details>"


def offered_rate_text(m: dict[str, Any]) -> str:
    rate = m.get("offered_rate")
    if rate is None:
        return "none (no fixed-rate point)"
    cal = m.get("calibration") or {}
    how = ""
    if isinstance(cal, dict) and cal.get("server"):
        how = (f" ({fmt(cal.get('fraction'))} of {cal['server']}'s closed-loop "
               f"{fmt(cal.get('closed_loop_rps'))} req/s"
               + ("" if cal.get("valid", True) else "; that calibration was not valid")
               + (f"; calibrated by the earlier run {cal['reused_from']}"
                  if cal.get("reused_from") else "") + ")")
    return f"{fmt(rate)} req/s{how}"


def manifest_fields(m: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, HTML) of the manifest's facts a reader compares machines by."""
    settings = m.get("settings") or {}
    skipped = m.get("skipped") or {}
    return [
        ("machine", esc(machine_name(m))),
        ("CPU", esc(m.get("cpu_model") or "?")),
        ("CPUs online", esc(m.get("cpus_online") or "?")),
        ("kernel", esc(m.get("kernel") or "?")),
        ("CPU accounting", esc(m.get("cpu_accounting") or "not recorded (run predates it)")),
        ("mitigations", mitigations_html(m)),
        ("placement", esc(f"{m.get('placement') or '?'} (server CPU {m.get('server_cpu')}, "
                          f"client CPU {m.get('client_cpu')})")),
        ("offered rate", esc(offered_rate_text(m))),
        ("baseline", esc(m.get("baseline") or "-")),
        ("scenario", esc(f"{m.get('scenario', '?')}: {settings.get('repeats', '?')} repeats of "
                         f"{settings.get('duration_s', '?')} s, {settings.get('connections', '?')}"
                         f" connections")),
        ("governor, steal at start", esc(f"{m.get('governor', '?')}, "
                                         f"{fmt(m.get('steal_at_start_pct'))}%")),
        ("started, finished", esc(f"{m.get('started', '?')}, "
                                  f"{m.get('finished') or 'not finished'}"
                                  + (" (interrupted)" if m.get("interrupted") else ""))),
        ("build", esc(f"git {m.get('git_revision', '?')}"
                      f"{' +changes' if m.get('git_dirty') else ''}; {m.get('compiler', '?')}; "
                      f"liburing {m.get('liburing', '?')}; {m.get('nginx') or 'no nginx'}")),
        ("skipped", esc("; ".join(f"{k}: {v}" for k, v in skipped.items()) or "nothing")),
    ]


def manifest_html(m: dict[str, Any]) -> str:
    return table(None, ([f"<b>{k}</b>", v] for k, v in manifest_fields(m)), "manifest")


# ---- the summary table ----------------------------------------------------------------------

def reasons_of(row: dict[str, Any]) -> list[str]:
    """A summary row's reasons (today 'why_invalid'; 'reasons' also read)."""
    why = row.get("reasons")
    if why is None:
        why = row.get("why_invalid")
    if isinstance(why, str):
        return [why] if why else []
    return [str(w) for w in why or []]


def interval_text(row: dict[str, Any]) -> tuple[str, str]:
    """(estimate, interval line) of a summary row: the mean with its 95% interval when the
    summary has one (issue 26's keys), else the median and the spread of the repeats."""
    if row.get("mean") is not None:
        low, high, method = row.get("low"), row.get("high"), row.get("method")
        if low is not None and high is not None:
            return fmt(row["mean"]), f"[{fmt(low)}, {fmt(high)}] 95%"
        return fmt(row["mean"]), f"no interval ({method or 'n=' + str(row.get('n', '?'))})"
    spread = row.get("spread")
    line = f"median of {row.get('n', '?')}"
    if spread is not None and (row.get("n") or 0) > 1:
        line += f", spread {float(spread):.0%}"
    return fmt(row.get("median")), line


def ratio_text(row: dict[str, Any]) -> str | None:
    if row.get("ratio") is None:
        return None
    low, high = row.get("ratio_low"), row.get("ratio_high")
    bounds = f" [{fmt(low)}, {fmt(high)}]" if low is not None and high is not None else ""
    return f"{fmt(row['ratio'])}× baseline{bounds}"


def cell_html(row: dict[str, Any] | None, notes: Footnotes) -> tuple[str, bool]:
    """(HTML, valid) of one figure."""
    if row is None:
        return "", True
    estimate, line = interval_text(row)
    ratio = ratio_text(row)
    valid = bool(row.get("valid", True))
    refs = notes.refs(reasons_of(row)) if not valid else ""
    if not valid and not refs:
        refs = notes.ref("not valid (the summary gives no reason)")
    out = f"{esc(estimate)}{refs}<span class=\"iv\">{esc(line)}</span>"
    if ratio:
        out += f'<span class="iv">{esc(ratio)}</span>'
    return out, valid


def params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def summary_html(run: RunInfo, notes: Footnotes) -> str:
    """One table per point: a row per server and cell, a column per metric."""
    if not run.summary:
        return '<p class="muted">No harness summary in this run (a micro-only run, or ' \
               'interrupted before the first cell).</p>'
    points = sorted({str(r.get("point")) for r in run.summary},
                    key=lambda p: (POINT_ORDER.index(p) if p in POINT_ORDER else 99, p))
    out = []
    for point in points:
        rows = [r for r in run.summary if r.get("point") == point]
        metrics = list(dict.fromkeys(str(r.get("metric")) for r in rows))
        keys = list(dict.fromkeys(
            (str(r.get("server")), json.dumps(r.get("params") or {}, sort_keys=True))
            for r in rows))
        by_key = {(str(r.get("server")), json.dumps(r.get("params") or {}, sort_keys=True),
                   str(r.get("metric"))): r for r in rows}
        has_params = any(p != "{}" for _, p in keys)
        header = ["server"] + (["cell"] if has_params else []) + \
            [esc(METRIC_LABELS.get(m, m)) for m in metrics]
        body = []
        for server, params in keys:
            cells = [f"<b>{esc(server)}</b>"]
            if has_params:
                cells.append(esc(params_text(json.loads(params))))
            for m in metrics:
                text, valid = cell_html(by_key.get((server, params, m)), notes)
                cells.append(f'<!--{"" if valid else "bad"}-->{text}')
            body.append(cells)
        out.append(f"<h4>{esc(point)}</h4>" + _mark_cells(table(header, body, "summary")))
    return "\n".join(out)


def _mark_cells(text: str) -> str:
    """Turns the markers cell_html's callers leave into the cells' classes."""
    return text.replace("<td><!--bad-->", '<td class="num bad">').replace(
        "<td><!---->", '<td class="num">')


# ---- charts, notebooks, raw files -----------------------------------------------------------

def data_uri(path: Path) -> str:
    kind = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def charts_html(folder: Path, page_dir: Path) -> str:
    """Every chart in folder/charts (and the ledger's claims chart beside it), embedded, with
    its CSV and SVG linked; a table drawn without an image is listed."""
    charts = folder / "charts"
    stems = sorted({p.stem for p in charts.glob("*") if p.suffix in (".png", ".svg", ".csv")}) \
        if charts.is_dir() else []
    out = []
    for stem in stems:
        png, svg, csv = (charts / f"{stem}{ext}" for ext in (".png", ".svg", ".csv"))
        image = png if png.exists() else svg if svg.exists() else None
        files = " · ".join(
            link(p, page_dir, p.suffix[1:].upper() + (" (table)" if p == csv else ""))
            for p in (csv, svg, png) if p.exists())
        if image is None:
            out.append(f'<figure id="chart-{esc(stem)}"><figcaption><b>{esc(stem)}</b>: no image '
                       f"drawn (make charts draws it); {files}</figcaption></figure>")
            continue
        out.append(f'<figure id="chart-{esc(stem)}"><img src="{data_uri(image)}" '
                   f'alt="{esc(stem)}"><figcaption><b>{esc(stem)}</b>: {files}</figcaption>'
                   f"</figure>")
    claims_png = folder / "claims.png"
    if claims_png.exists():
        out.append(f'<figure id="chart-claims"><img src="{data_uri(claims_png)}" '
                   f'alt="claims ledger"><figcaption><b>claims</b> (make claims): '
                   f"{link(claims_png, page_dir, 'PNG')}"
                   + (f" · {link(folder / 'ledger.md', page_dir)}"
                      if (folder / "ledger.md").exists() else "") + "</figcaption></figure>")
    if not out:
        return (f'<p class="muted">No charts in {esc(shown_path(charts))}: <code>make charts '
                f"RESULTS={esc(shown_path(folder))}</code> draws them.</p>")
    return "\n".join(out)


def notebooks_html(folder: Path, page_dir: Path) -> str:
    pages = sorted((folder / "notebooks").glob("*.html"))
    if not pages:
        return ('<p class="muted">No executed notebooks here: <code>make charts</code> writes '
                "them as notebooks/NN-name.html.</p>")
    return "<ul>" + "".join(f"<li>{link(p, page_dir, p.stem)}</li>" for p in pages) + "</ul>"


RAW_SKIP = {"charts", "notebooks"}
MAX_RAW = 80


def raw_files_html(run: Path, page_dir: Path) -> str:
    files = sorted(p for p in run.rglob("*") if p.is_file() and p.name != REPORT
                   and not RAW_SKIP & set(p.relative_to(run).parts[:1]))
    items = [f"<li>{link(p, page_dir, p.relative_to(run).as_posix())} "
             f'<span class="muted">{p.stat().st_size // 1024 or 1} KB</span></li>'
             for p in files[:MAX_RAW]]
    more = f"<li>and {len(files) - MAX_RAW} more</li>" if len(files) > MAX_RAW else ""
    return f'<ul class="files">{"".join(items)}{more}</ul>'


# ---- the claims ledger (bench/iolab_bench/claims.py as a library) ---------------------------

@dataclass
class Verdict:
    cid: str
    claim: str
    claimed: str
    measured: str
    verdict: str
    detail: str


def ledger(folder: Path) -> tuple[list[Verdict], str | None]:
    """The ledger evaluated on the runs at or under `folder`: (verdicts, None), or ([], why)
    when the ledger code could not evaluate it. Only the ledger's public entry points are used
    (load_ledger, evaluate_claim, figures.find_runs), and read defensively: the page must come
    out even when the ledger is being reworked."""
    try:
        from . import claims, figures
        runs = figures.find_runs(folder)
        results = [claims.evaluate_claim(c, runs) for c in claims.load_ledger()]
    except Exception as e:  # noqa: BLE001  (any failure of the ledger is shown, not raised)
        return [], f"{type(e).__name__}: {e}"
    out = []
    for r in results:
        claim = getattr(r, "claim", None) or {}
        measured: Any = getattr(r, "measured", "-")
        try:
            measured = measured() if callable(measured) else measured
        except Exception as e:  # noqa: BLE001
            measured = f"? ({type(e).__name__})"
        out.append(Verdict(str(claim.get("id", "?")), str(claim.get("claim", "")),
                           str(claim.get("claimed", "")), str(measured),
                           str(getattr(r, "verdict", "?")), str(getattr(r, "detail", "") or "")))
    return out, None


def verdict_html(verdict: str) -> str:
    return f'<span class="{VERDICT_CLASS.get(verdict, "other")}">{esc(verdict)}</span>'


def ledger_html(folder: Path, page_dir: Path) -> str:
    verdicts, error = ledger(folder)
    if error:
        return f"<p>The claims ledger could not be evaluated here: <code>{esc(error)}</code></p>"
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    md = folder / "ledger.md"
    intro = (f"<p>{len(verdicts)} claims (bench/claims.json) against the runs in this folder: "
             + ", ".join(f"{n} {esc(k)}" for k, n in counts.items())
             + (f". Written out by make claims: {link(md, page_dir)}" if md.exists() else "")
             + ".</p>")
    rows = ([esc(v.cid), esc(v.claim), esc(v.claimed), esc(v.measured), verdict_html(v.verdict),
             esc(v.detail)] for v in verdicts)
    return intro + table(("id", "claim", "claimed", "measured", "verdict", "why"), rows, "ledger")


# ---- pages ----------------------------------------------------------------------------------

def run_section(run: RunInfo, page_dir: Path, notes: Footnotes, own_title: bool) -> str:
    name = run.path.name
    title = run.scenario if name == run.scenario else f"{run.scenario}: {name}"
    head = "" if own_title else f'<h2 id="run-{esc(name)}">{esc(title)}</h2>'
    return "\n".join([
        head,
        "<h3>Machine and settings</h3>", manifest_html(run.manifest),
        "<h3>Summary</h3>",
        '<p class="muted">Each figure: the estimate, then its 95% interval (or, for runs '
        "before intervals, the median of the repeats and their spread). Shaded: not valid; "
        "the number leads to the reason.</p>",
        summary_html(run, notes),
        "<h3>Raw files</h3>", raw_files_html(run.path, page_dir),
    ])


def write_report(folder: Path) -> Path:
    """report.html for a run folder or a machine folder; returns its path."""
    folder = folder.resolve()
    kind = layout(folder)
    if kind == MACHINES:
        raise ReportError(f"{folder} is a folder of machine folders: use write_side_by_side")
    notes = Footnotes()
    older: list[RunInfo] = []
    if kind == RUN:
        runs = [load_run(folder)]
    else:
        runs, older = newest_per_scenario(folder)
    first = runs[0].manifest if runs else {}
    title = (f"iolab run {folder.name}" if kind == RUN
             else f"iolab runs in {folder.name}/")
    nav = ['<a href="#charts">charts</a>', '<a href="#notebooks">notebooks</a>',
           '<a href="#ledger">claims ledger</a>', '<a href="#notes">notes</a>']
    if kind == MACHINE:
        nav = [f'<a href="#run-{esc(r.path.name)}">{esc(r.scenario)}</a>' for r in runs] + nav
    parent = folder.parent / REPORT
    up = (f'<p class="muted">Part of {link(parent, folder, "the machines side by side")}.</p>'
          if kind == MACHINE and (folder.parent / REPORT).exists() else "")
    sections = [f"<h1>{esc(title)}</h1>",
                f"<p><b>{esc(machine_name(first))}</b>. {esc(kind.capitalize())} "
                f"<code>{esc(shown_path(folder))}</code>"
                f"{'' if kind == RUN else f', {len(runs)} runs shown'}. Every figure names this "
                f"machine; a shared or loaded machine makes figures not valid, and the notes say "
                f"which.</p>", up, "<nav>" + "".join(nav) + "</nav>"]
    for run in runs:
        sections.append(run_section(run, folder, notes, kind == RUN))
    if older:
        sections.append("<h3>Older runs of the same scenarios (not shown)</h3><ul>" + "".join(
            f"<li>{link(r.path, folder)} ({esc(r.scenario)}, {esc(r.started)})</li>"
            for r in older) + "</ul>")
    sections += ['<h2 id="charts">Charts</h2>',
                 '<p class="muted">Drawn by make charts from the runs above (each chart names the '
                 "run it comes from); the CSV is the table it was drawn from.</p>",
                 charts_html(folder, folder),
                 '<h2 id="notebooks">Notebooks</h2>', notebooks_html(folder, folder),
                 '<h2 id="ledger">Claims ledger</h2>', ledger_html(folder, folder),
                 notes.html()]
    out = folder / REPORT
    out.write_text(page(title, "\n".join(s for s in sections if s)))
    return out


def _pick_run(machine: Path) -> RunInfo | None:
    """The run a machine's column takes the models' costs from: the newest models run, else
    quick, else the newest run with both a fixed-rate and a saturation point."""
    runs, _ = newest_per_scenario(machine)
    for scenario in SIDE_BY_SIDE_SCENARIOS:
        for r in runs:
            if r.scenario == scenario and r.summary:
                return r
    for r in runs:
        points = {s.get("point") for s in r.summary}
        if {"fixed_rate", "saturation"} <= points:
            return r
    return None


def _row(run: RunInfo, server: str, point: str, metric: str) -> dict[str, Any] | None:
    for r in run.summary:
        if (r.get("server") == server and r.get("point") == point and r.get("metric") == metric
                and not r.get("params")):
            return r
    return None


def _estimate(row: dict[str, Any]) -> float | None:
    v = row.get("mean") if row.get("mean") is not None else row.get("median")
    return float(v) if v is not None else None


def ratio_cell(run: RunInfo, server: str, baseline: str, notes: Footnotes) -> tuple[str, bool]:
    """Saturation requests/s as a ratio to the baseline's: the summary's paired ratio and its
    interval when it has them, else the ratio of the two medians, said to have no interval."""
    row = _row(run, server, "saturation", "rps")
    base = _row(run, baseline, "saturation", "rps")
    if row is None:
        return "", True
    valid = bool(row.get("valid", True))
    reasons = reasons_of(row) if not valid else []

    def shown(value: str, line: str) -> tuple[str, bool]:
        return f'{value}{notes.refs(reasons)}<span class="iv">{esc(line)}</span>', valid
    if row.get("ratio") is not None:
        low, high = row.get("ratio_low"), row.get("ratio_high")
        return shown(f"{fmt(row['ratio'])}×",
                     f"[{fmt(low)}, {fmt(high)}] 95%" if low is not None and high is not None
                     else f"no interval ({row.get('method') or '?'})")
    if server == baseline:
        return shown("1×", "the baseline")
    ours, theirs = _estimate(row), _estimate(base) if base else None
    if ours is None or not theirs:
        return shown("-", "no baseline figure")
    if base is not None and not base.get("valid", True):
        valid = False
        reasons += [f"{baseline}: {r}" for r in reasons_of(base)]
    return shown(f"{fmt(ours / theirs)}×", "ratio of medians; no interval (summary without "
                 "ratios)")


def cpu_cell(run: RunInfo, server: str, notes: Footnotes) -> tuple[str, bool]:
    return cell_html(_row(run, server, "fixed_rate", "server_cpu_us"), notes)


def _servers(runs: list[RunInfo]) -> list[str]:
    seen = list(dict.fromkeys(str(r.get("server")) for run in runs for r in run.summary
                              if r.get("point") in ("fixed_rate", "saturation")))
    return [s for s in seen if s not in REFERENCE_SERVERS] + \
        [s for s in REFERENCE_SERVERS if s in seen]


def write_side_by_side(root: Path) -> tuple[Path, list[Path]]:
    """report.html of a folder of machine folders (machines in columns), after each machine's
    own report.html; returns (the page, the machines' pages)."""
    root = root.resolve()
    machines = [c for c in _children(root) if is_machine(c)]
    if not machines:
        raise ReportError(f"{root} holds no machine folder")
    notes = Footnotes()
    picked = {m: _pick_run(m) for m in machines}
    any_run = [r for r in picked.values() if r is not None]
    head = ["", *(f"{link(m / REPORT, root, m.name)}" for m in machines)]
    parts = [f"<h1>iolab: {len(machines)} machines side by side</h1>",
             f"<p>Folder of machine folders <code>{esc(shown_path(root))}</code>. Each column "
             f"is one machine folder; its name leads to that machine's own report. Figures "
             f"come from each machine's newest {' or '.join(SIDE_BY_SIDE_SCENARIOS)} run; a "
             f"machine measures only itself, so compare ratios and verdicts across columns "
             f"rather than raw figures.</p>",
             '<nav><a href="#cpu">CPU per request</a><a href="#ratio">saturation ratio</a>'
             '<a href="#claims">claims</a><a href="#manifests">manifests</a>'
             '<a href="#notes">notes</a></nav>']
    servers = _servers(any_run)

    def grid(fn: Callable[[RunInfo, str], tuple[str, bool]]) -> str:
        body = []
        for s in servers:
            cells = [f"<b>{esc(s)}</b>"]
            for m in machines:
                run = picked[m]
                text, valid = fn(run, s) if run is not None else ("no run", True)
                cells.append(f'<!--{"" if valid else "bad"}-->{text}')
            body.append(cells)
        return _mark_cells(table(head, body, "side"))

    parts += ['<h2 id="cpu">Server CPU per request at the fixed rate (µs)</h2>',
              '<p class="muted">The estimate, then its 95% interval (or the median and spread of '
              "the repeats for runs before intervals). Each machine's offered rate is in the "
              "manifests below.</p>",
              grid(lambda run, s: cpu_cell(run, s, notes))]
    baselines = {str(r.manifest.get("baseline") or "nginx") for r in any_run}
    parts += [f'<h2 id="ratio">Saturation requests/s as a ratio to '
              f'{esc(" / ".join(sorted(baselines)))}</h2>',
              grid(lambda run, s: ratio_cell(run, s, str(run.manifest.get("baseline")
                                                         or "nginx"), notes))]
    ledgers = {m: ledger(m) for m in machines}
    ids: dict[str, Verdict] = {}
    for verdicts, _ in ledgers.values():
        for v in verdicts:
            ids.setdefault(v.cid, v)
    rows = []
    for cid, first in ids.items():
        cells = [f"<b>{esc(cid)}</b> {esc(first.claim)}"]
        for m in machines:
            verdicts, error = ledgers[m]
            found = [x for x in verdicts if x.cid == cid]
            cells.append(f"could not evaluate: {esc(error)}" if error else "-" if not found
                         else f'{verdict_html(found[0].verdict)}<span class="iv">'
                              f"{esc(found[0].measured)}</span>")
        rows.append(cells)
    parts += ['<h2 id="claims">Claims: the verdict on each machine</h2>',
              '<p class="muted">The ledger (bench/claims.json) evaluated on all of each machine\'s '
              "runs, as make claims does; the measured figure under each verdict.</p>",
              table(head, rows, "side")]
    fields: list[list[str]] = []
    for i, (label, _) in enumerate(manifest_fields({})):
        row = [f"<b>{esc(label)}</b>"]
        for m in machines:
            run = picked[m]
            row.append(manifest_fields(run.manifest)[i][1] if run is not None else "-")
        fields.append(row)
    fields.append(["<b>run shown</b>"] + [esc(r.path.name) if r is not None else "-"
                                          for r in (picked[m] for m in machines)])
    parts += ['<h2 id="manifests">Manifests</h2>', table(head, fields, "side"), notes.html()]
    out = root / REPORT
    out.write_text(page(f"iolab: machines in {root.name}/", "\n".join(parts)))
    # After this page, so that each machine's page finds it and links back.
    machine_pages = [write_report(m) for m in machines]
    return out, machine_pages


def write(results: str | Path) -> list[Path]:
    """The report(s) for RESULTS, the main page first."""
    path = Path(results)
    kind = layout(path)
    if kind == MACHINES:
        main_page, others = write_side_by_side(path)
        return [main_page, *others]
    return [write_report(path)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--results", default=str(ROOT / "results" / "latest"),
                   help="a run folder, a machine folder of runs, or a folder of machine folders")
    opts = p.parse_args(argv)
    try:
        kind = layout(opts.results)
        pages = write(opts.results)
    except (ReportError, OSError) as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    print(f"report: {opts.results} is a {kind}")
    for i, path in enumerate(pages):
        size = path.stat().st_size // 1024
        print(f"report: {'wrote' if i == 0 else '  and'} {path} ({size} KB)")
    return 0
