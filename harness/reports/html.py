"""The compatibility matrix as one self-contained HTML page: inline CSS and JS, no
network. A heat map (models x check families, coloured by status, with counts), a model
filter, and per-failure details (message and failure text) reachable from each cell.
The page renders without JavaScript too: the script only filters and jumps."""
from __future__ import annotations

import html
import json

from harness.reports.matrix import STATUSES, Matrix

COLOURS = {"fail": "#d73027", "known": "#fdae61", "pass": "#1a9850", "skip": "#bdbdbd", "n/a": "#f5f5f5"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;font-size:12px}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:center;white-space:nowrap}
th.model,td.model{text-align:left;font-family:ui-monospace,monospace}
thead th{position:sticky;top:0;background:#fafafa}
td.cell{min-width:4.5em;cursor:default}
td.fail,td.known{cursor:pointer}
td.fail{background:%(fail)s;color:#fff}td.known{background:%(known)s}td.pass{background:%(pass)s;color:#fff}
td.skip{background:%(skip)s}td.na{background:%(na)s;color:#aaa}
.legend span{display:inline-block;padding:2px 8px;margin-right:6px;border:1px solid #ccc}
.controls{margin:1em 0}
details{margin:4px 0;border-left:4px solid %(fail)s;padding-left:8px}
details.known{border-color:%(known)s}
pre{white-space:pre-wrap;font-size:12px;background:#f7f7f7;padding:6px;max-height:24em;overflow:auto}
code{font-size:12px}
.summary td{min-width:3em}
""" % {"fail": COLOURS["fail"], "known": COLOURS["known"], "pass": COLOURS["pass"], "skip": COLOURS["skip"],
       "na": COLOURS["n/a"]}

_JS = """
function applyFilter(){
  var q=document.getElementById('q').value.toLowerCase();
  var only=document.getElementById('onlybad').checked;
  var rows=document.querySelectorAll('#matrix tbody tr');var shown=0;
  rows.forEach(function(r){
    var ok=r.dataset.model.indexOf(q)>=0 && (!only || r.dataset.status==='fail' || r.dataset.status==='known');
    r.style.display=ok?'':'none'; if(ok) shown++;});
  document.getElementById('shown').textContent=shown;
}
function openDetails(id){
  var d=document.getElementById(id); if(!d) return; d.open=true; d.scrollIntoView({block:'center'});
}
document.addEventListener('DOMContentLoaded',function(){
  // deep links: matrix.html#q=vit_&bad=1 opens a filtered view, #open=d-<model>--<family> a cell's details
  var h=new URLSearchParams(location.hash.slice(1));
  if(h.get('q')) document.getElementById('q').value=h.get('q');
  if(h.get('bad')==='1') document.getElementById('onlybad').checked=true;
  document.getElementById('q').addEventListener('input',applyFilter);
  document.getElementById('onlybad').addEventListener('change',applyFilter);
  document.querySelectorAll('td[data-target]').forEach(function(td){
    td.addEventListener('click',function(){openDetails(td.dataset.target);});});
  applyFilter();
  if(h.get('open')) openDetails(h.get('open'));  // #open=<details id>: a failure's details
});
"""


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({text.count(',') + 1} patterns)"


def _cell_id(model: str, family: str) -> str:
    return "d-" + "".join(c if c.isalnum() else "_" for c in f"{model}--{family}")


def render_html(matrix: Matrix) -> str:
    e = html.escape
    meta = matrix.meta
    title = f"timm {meta.get('timm', '?')}: compatibility matrix"
    totals = matrix.totals()
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{e(title)}</h1>",
           f"<p>{len(matrix.models)} models x {len(matrix.families)} check families; torch "
           f"{e(str(meta.get('torch', '?')))}; selection <code>{e(_short(str(meta.get('selection', '?'))))}</code>"
           + (f"; shard {e(str(meta['shard']))}" if meta.get("shard") else "")
           + (f"; wall time {meta['wall_s']:.0f}s" if isinstance(meta.get("wall_s"), (int, float)) else "")
           + "</p>",
           "<p class='legend'>" + "".join(f"<span style='background:{COLOURS[s]}'>{e(s)}</span>" for s in STATUSES)
           + " Click a failing or known-issue cell for its details.</p>"]
    # per-family totals
    out.append("<h2>Totals (models per status)</h2><table class='summary' id='totals'><thead><tr><th>family</th>"
               + "".join(f"<th>{e(s)}</th>" for s in STATUSES) + "</tr></thead><tbody>")
    for f in matrix.families:
        out.append(f"<tr><td class='model'>{e(f)}</td>" + "".join(f"<td>{totals[f][s]}</td>" for s in STATUSES)
                   + "</tr>")
    out.append("</tbody></table>")
    # the heat map
    out.append("<h2>Matrix</h2><div class='controls'><label>model filter <input id='q' type='search'></label> "
               "<label><input id='onlybad' type='checkbox'> only models with failures or known issues</label> "
               f"(<span id='shown'>{len(matrix.models)}</span> shown)</div>")
    out.append("<table id='matrix'><thead><tr><th class='model'>model</th>"
               + "".join(f"<th>{e(f)}</th>" for f in matrix.families) + "</tr></thead><tbody>")
    for m in matrix.models:
        out.append(f"<tr data-model='{e(m.lower())}' data-status='{matrix.model_status(m)}'>"
                   f"<td class='model'>{e(m)}</td>")
        for f in matrix.families:
            cell = matrix.cell(m, f)
            css = "na" if cell.status == "n/a" else cell.status
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(cell.counts.items())) or "not applicable"
            target = f" data-target='{_cell_id(m, f)}'" if cell.status in ("fail", "known") else ""
            out.append(f"<td class='cell {css}' title='{e(f)}: {e(counts)}'{target}>{e(cell.label)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    # per-failure details, grouped by cell
    bad = [(m, f, matrix.cell(m, f)) for m in matrix.models for f in matrix.families
           if matrix.cell(m, f).status in ("fail", "known")]
    n_fail = sum(c.counts["failed"] for _, _, c in bad)
    out.append(f"<h2>Failures and known issues ({n_fail} failed tests, "
               f"{sum(c.counts['known issue'] for _, _, c in bad)} known issues)</h2>")
    if not bad:
        out.append("<p>None.</p>")
    for m, f, cell in bad:
        out.append(f"<details id='{_cell_id(m, f)}' class='{cell.status}'><summary><code>{e(m)}</code> / "
                   f"{e(f)}: {e(cell.label)}</summary>")
        for r in sorted(cell.tests, key=lambda r: (r.outcome != "failed", r.test)):
            if r.outcome not in ("failed", "known issue"):
                continue
            out.append(f"<p><b>{e(r.outcome)}</b> <code>{e(r.test)}</code>"
                       + (f" ({r.duration:.1f}s)" if r.duration else "") + f"<br>{e(r.message)}</p>")
            if r.detail:
                out.append(f"<pre>{e(r.detail)}</pre>")
        out.append("</details>")
    meta_json = json.dumps(meta, default=str).replace("</", "<\\/")
    out.append(f"<script type='application/json' id='meta'>{meta_json}</script>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out) + "\n"
