"""The one-page report: every verdict with its reason, the key metrics with their intervals, every
figure, per-stage wall time, the params hash, the git commit and the MLflow run ids.

Built from what the pipeline declares (`scalelens.pipeline`): each stage's metrics json and
plots, read for the ladder in params.yaml, and the latest MLflow run of every stage instance.
The page is offline and self-contained: figures are embedded as data URIs, no script or style
is fetched. A small inline script counts, once the page has loaded, the images that decoded and
writes the count into `body[data-images-loaded]` (the browser test reads it). Run ids and
timings change from run to run, so this is the one output that is not byte-identical.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

VERDICT_KEYS = ("verdict", "tier", "reason", "premise")


@dataclass
class StageEntry:
    stage: str
    instance: str  # the model slug, the graph set, or "" for a ladder stage
    metrics: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)


def stage_entries(params) -> list[StageEntry]:
    """Every stage instance with its metrics files and plots, in pipeline order."""
    from scalelens.pipeline import SLUG, build_dvc_yaml

    entries = []
    for name, body in build_dvc_yaml(params)["stages"].items():
        if name == "report":
            continue
        do = body.get("do", body)
        metrics = [next(iter(m)) if isinstance(m, dict) else m for m in do.get("metrics", [])]
        plots = [next(iter(p)) if isinstance(p, dict) else p for p in do.get("plots", [])]
        for key in (list(body["foreach"]) if "foreach" in body else [""]):
            def fill(paths, key=key):
                return [Path(p.replace(SLUG, key)) for p in paths]
            entries.append(StageEntry(name, key, fill(metrics), fill(plots)))
    return entries


def find_verdicts(doc, where: str = "") -> list[dict]:
    """Every mapping in a json that holds a 'verdict' (with its path, tier, reason, premise)."""
    found = []
    if isinstance(doc, dict):
        if isinstance(doc.get("verdict"), str):
            premise = doc.get("premise")
            found.append({"where": where or "(top)", "verdict": doc["verdict"],
                          "tier": doc.get("tier"), "reason": doc.get("reason"),
                          "premise": premise.get("reason") if isinstance(premise, dict)
                          else premise})
        for k, v in doc.items():
            if k not in VERDICT_KEYS:
                found += find_verdicts(v, f"{where}.{k}" if where else str(k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += find_verdicts(v, f"{where}[{i}]")
    return found


def key_metrics(doc: dict) -> list[tuple[str, str]]:
    """Top-level numbers and flags of a metrics json, each x_low/x_high folded into x's
    interval: (name, formatted value)."""
    out = []
    for k in sorted(doc):
        v = doc[k]
        if k.endswith(("_low", "_high")) or isinstance(v, dict | list):
            continue
        if isinstance(v, bool) or isinstance(v, str):
            out.append((k, str(v)))
        elif isinstance(v, int | float) or v is None:
            text = _num(v)
            lo, hi = doc.get(f"{k}_low"), doc.get(f"{k}_high")
            if isinstance(lo, int | float) and isinstance(hi, int | float):
                text += f" [{_num(lo)}, {_num(hi)}]"
            out.append((k, text))
    return out


def _num(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(str(path))}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(str(path))}</figcaption></figure>")


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    status: str
    seconds: float | None


def latest_runs(tracking_uri: str) -> dict[tuple[str, str], RunInfo]:
    """{(stage, run name): the latest run} from the MLflow store ({} when there is none)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    out: dict[tuple[str, str], RunInfo] = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"],
                                      max_results=5000):
            info = run.info
            seconds = ((info.end_time - info.start_time) / 1000
                       if info.end_time and info.start_time else None)
            out[(exp.name, info.run_name or "")] = RunInfo(info.run_id, info.status, seconds)
    return out


STYLE = """
body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;
font-size:.85em;vertical-align:top;text-align:left}
.v{font-weight:bold}.NOT_APPLICABLE,.UNINFORMATIVE,.INCONCLUSIVE{color:#a60}
figure{display:inline-block;margin:.5em;max-width:46%}img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.75em;color:#666}.meta{font-size:.85em;color:#555}
"""

LOAD_SCRIPT = """window.addEventListener("load",function(){var n=0;for(var i=0;
i<document.images.length;i++){var im=document.images[i];if(im.complete&&im.naturalWidth>0)n++;}
document.body.setAttribute("data-images-loaded",String(n));});"""


def build_report(params, root: Path, commit: str, params_sha256: str,
                 runs: dict[tuple[str, str], RunInfo], slugs_to_keys: dict[str, str]) -> str:
    """The report page's HTML."""
    entries = stage_entries(params)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>scalelens report</title>"
             f"<style>{STYLE}</style></head><body data-images-expected=\"{{n_images}}\">",
             "<h1>scalelens: results of the pipeline</h1>",
             f"<p class='meta'>git commit <code>{html.escape(commit)}</code>, params.yaml sha256 "
             f"<code>{params_sha256}</code>; models: "
             f"{html.escape(', '.join(params.models))}</p>"]
    verdict_rows, time_rows, n_images = [], [], 0
    sections: dict[str, list[str]] = {}
    for e in entries:
        model = slugs_to_keys.get(e.instance, e.instance)
        run = runs.get((e.stage, f"{e.stage}:{model}" if e.instance else e.stage))
        time_rows.append(
            f"<tr><td>{e.stage}</td><td>{html.escape(e.instance)}</td>"
            f"<td>{_num(run.seconds) if run else 'n/a'}</td>"
            f"<td>{run.status if run else 'no run'}</td>"
            f"<td><code>{run.run_id if run else ''}</code></td></tr>")
        body = []
        for path in e.metrics:
            full = root / path
            if not full.is_file():
                body.append(f"<p>missing: {html.escape(str(path))}</p>")
                continue
            doc = json.loads(full.read_text(encoding="utf-8"))
            for v in find_verdicts(doc):
                verdict_rows.append(
                    f"<tr><td>{e.stage}</td><td>{html.escape(e.instance)}</td>"
                    f"<td>{html.escape(v['where'])}</td><td class='v {html.escape(v['verdict'])}'>"
                    f"{html.escape(v['verdict'])}</td><td>{html.escape(str(v['tier'] or ''))}"
                    f"</td><td>{html.escape(str(v['reason'] or v['premise'] or ''))}</td></tr>")
            rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(val)}</td></tr>"
                           for k, val in key_metrics(doc))
            if rows:
                body.append(f"<table><caption>{html.escape(str(path))}</caption>{rows}</table>")
        for path in e.plots:
            if (root / path).is_file():
                body.append(_img(root / path))
                n_images += 1
        if body:
            title = f"{e.stage}" + (f" @ {html.escape(e.instance)}" if e.instance else "")
            sections.setdefault(e.stage, []).append(f"<h3>{title}</h3>" + "".join(body))
    parts.append("<h2>Verdicts</h2><table><tr><th>stage</th><th>model / set</th><th>where</th>"
                 "<th>verdict</th><th>tier</th><th>reason</th></tr>" + "".join(verdict_rows)
                 + "</table>")
    for stage, blocks in sections.items():
        parts.append(f"<h2>{html.escape(stage)}</h2>" + "".join(blocks))
    parts.append("<h2>Stage runs (MLflow)</h2><table><tr><th>stage</th><th>model / set</th>"
                 "<th>wall s</th><th>status</th><th>run id</th></tr>" + "".join(time_rows)
                 + "</table>")
    parts.append(f"<script>{LOAD_SCRIPT}</script></body></html>")
    return "\n".join(parts).replace("{n_images}", str(n_images))
