"""Stage `report`: results/report/index.html, one offline page of the whole pipeline.

Ins: every other stage's metrics json and figures (dvc.yaml lists them) and the MLflow store.
Outs: results/report/index.html: for every model and study the verdicts with their reasons, the
key metrics with their intervals, the figures (embedded), per-stage wall time and MLflow run ids,
the params hash and the git commit (scalelens.report). Open it in any browser; nothing is fetched.
"""

from pathlib import Path

from scalelens.paths import ReportPaths, check_unique_slugs
from scalelens.report import build_report, latest_runs
from scalelens.stage import StageContext, run_stage
from scalelens.tracking import git_commit, stage_run, tracking_uri


def main(ctx: StageContext) -> None:
    p = ctx.params
    out = ctx.out(ReportPaths.index)
    runs = latest_runs(tracking_uri())
    slugs = check_unique_slugs(p.models)
    page = build_report(p, Path.cwd(), git_commit(), ctx.params_sha256, runs, slugs)
    out.write_text(page, encoding="utf-8")
    n_images = page.count("<img ")
    with stage_run("report", None, {"models": ",".join(p.models)},
                   {"params_sha256": ctx.params_sha256, "n_images": n_images}) as run:
        run.log_metrics({"n_images": n_images, "n_stage_runs_found": len(runs)})
        run.log_artifact(out)


if __name__ == "__main__":
    run_stage("report", main, per_model=False)
