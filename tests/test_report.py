"""The one-page report of the tiny pipeline, opened in headless Chromium: every image loads,
every verdict of every metrics file is on the page, with the run ids and the params hash."""

import json
import re

import pytest
from browser import dump_dom

from scalelens.params import load_params, params_sha256
from scalelens.paths import ReportPaths
from scalelens.report import find_verdicts, stage_entries

pytestmark = pytest.mark.xdist_group("ladder")  # one worker: tests share its fixtures


def test_the_report_page_holds_every_verdict_and_every_image_loads(ladder_repo, monkeypatch):
    root, models = ladder_repo
    page = root / ReportPaths.index
    assert page.is_file()
    monkeypatch.chdir(root)
    params = load_params("params.yaml")
    dom = dump_dom(page.resolve().as_uri(), budget_ms=5000)
    expected = int(re.search(r'data-images-expected="(\d+)"', dom).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', dom).group(1))
    figures = [p for e in stage_entries(params) for p in e.plots if (root / p).is_file()]
    assert loaded == expected == len(figures) > 20
    for entry in stage_entries(params):
        for path in entry.metrics:
            for v in find_verdicts(json.loads((root / path).read_text())):
                assert v["verdict"] in dom, (path, v)
    assert params_sha256("params.yaml") in dom
    for model in models:
        assert model in dom
    assert len(re.findall(r"<code>[0-9a-f]{32}</code>", dom)) >= 20  # MLflow run ids
