"""The HTML report: captions render from any config, and figures show up in a real browser.

Snakemake 9 reports are a React single-page app: every result is embedded as a base64 data
URI in ``<script id="results">var results = {...};</script>``, and the page draws a figure
only after the reader opens it (menu → result → eye button). The browser tests therefore
check both layers:

1. the embedded data: every expected figure is there, byte for byte, with its caption and
   category;
2. the rendered page: headless Chromium loads a copy of the report with a small harness
   script appended that, for each result, does what a reader does (open the result's info
   panel, click its eye button) and records whether an ``<img>`` with that figure appeared,
   decoded (natural size > 0) and laid out (box size > 0), and whether its caption is shown.
   ``--dump-dom`` returns the record; ``--screenshot`` captures one figure on screen.

``throwaway_report_html`` builds a two-figure report from a minimal Snakefile (the real
plotting functions and caption files, synthetic tables), so the browser part is tested
independently of the full workflow; ``tiny_report_html`` is the report of the tiny config's
end-to-end run.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CAPTIONS = REPO / "workflow" / "report"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1600,1000",
]
CHROMIUM_TIMEOUT_S = 180

# Appended to a copy of the report: drives the app like a reader and records what it saw.
HARNESS = textwrap.dedent("""
    <script id="prunesim-harness">
    (function () {
      const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
      const wanted = decodeURIComponent(location.hash.replace(/^#figure=/, ""));
      async function open(path) {
        const entry = results[path];
        const record = {path: path, eye: false, img: false, natural: [0, 0], box: [0, 0]};
        app.showResultInfo(path);
        await sleep(200);
        const caption = document.querySelector("nav .prose-invert");
        record.caption = caption ? caption.innerText : null;
        const eye = document.querySelector('nav a[iconname="eye"]');
        if (eye) {
          record.eye = true;
          eye.click();
          await sleep(300);
        }
        const img = Array.from(document.querySelectorAll("img"))
          .find((el) => el.getAttribute("src") === entry.data_uri);
        if (img) {
          record.img = true;
          try { await img.decode(); } catch (err) { record.error = String(err); }
          const box = img.getBoundingClientRect();
          record.natural = [img.naturalWidth, img.naturalHeight];
          record.box = [box.width, box.height];
        }
        return record;
      }
      window.addEventListener("load", async () => {
        await sleep(300);
        const menu = Array.from(document.querySelectorAll("nav a span"))
          .map((el) => el.textContent);
        const records = [];
        for (const path of Object.keys(results)) {
          if (!wanted || wanted === path) records.push(await open(path));
        }
        const out = document.createElement("pre");
        out.id = "prunesim-check";
        out.hidden = true;
        out.textContent = JSON.stringify({menu: menu, records: records});
        document.body.appendChild(out);
      });
    })();
    </script>
""")


# ---------------------------------------------------------------------------- helpers


def chromium() -> str:
    """Path of a Chromium binary; the browser tests skip (not fail) where there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium chromium-driver)")


def run_chromium(url: str, workdir: Path, *args: str, budget_ms: int) -> str:
    """Run headless Chromium on ``url`` with a fresh profile; return its stdout."""
    profile = workdir / f"profile-{len(list(workdir.glob('profile-*')))}"
    cmd = [
        chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        *args,
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc.stdout


def embedded(report: Path, name: str) -> dict:
    """The JSON object the report embeds as ``var <name> = {...};``."""
    text = report.read_text()
    match = re.search(rf"<script id=\"{name}\">\s*var {name} = (.*?);\s*</script>", text, re.S)
    assert match, f"report {report} has no embedded {name!r}"
    return json.loads(match.group(1))


def decode_data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    assert header.endswith(";base64"), header
    return base64.b64decode(payload)


def text_of(caption_html: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", caption_html)).split())


def with_harness(report: Path, workdir: Path) -> Path:
    """A copy of ``report`` with the harness script appended (the report itself untouched)."""
    text = report.read_text()
    cut = text.rfind("</body>")
    assert cut > 0, "report has no </body>"
    copy = workdir / "report-harness.html"
    copy.write_text(text[:cut] + HARNESS + text[cut:])
    return copy


def browse(report: Path, workdir: Path) -> dict:
    """Open every result of ``report`` in Chromium; return the harness's record."""
    harness = with_harness(report, workdir)
    n = len(embedded(report, "results"))
    dom = run_chromium(harness.as_uri(), workdir, "--dump-dom", budget_ms=3000 + 1000 * n)
    match = re.search(r'<pre id="prunesim-check"[^>]*>(.*?)</pre>', dom, re.S)
    assert match, "the harness did not finish: the report's app did not load or threw"
    return json.loads(html.unescape(match.group(1)))


def screenshot(report: Path, workdir: Path, result_path: str) -> np.ndarray:
    """Screenshot of the report showing ``result_path``; returns the image as an array."""
    import matplotlib.image

    harness = with_harness(report, workdir)
    png = workdir / "screenshot.png"
    url = harness.as_uri() + "#figure=" + urllib.parse.quote(result_path, safe="")
    run_chromium(url, workdir, f"--screenshot={png}", budget_ms=4000)
    assert png.exists(), "chromium wrote no screenshot"
    return matplotlib.image.imread(png)


def assert_report_shows(
    report: Path, workdir: Path, expected: dict[str, tuple[str, str]], results_root: Path
) -> None:
    """Every ``{file name: (category, caption phrase)}`` is embedded and shown in Chromium.

    ``results_root`` is the directory the workflow ran in: embedded figures must equal
    the files there byte for byte.
    """
    results = embedded(report, "results")
    categories = embedded(report, "categories")
    by_name = {entry["name"]: (path, entry) for path, entry in results.items()}
    assert set(expected) <= set(by_name), f"missing figures: {set(expected) - set(by_name)}"
    for name, (category, phrase) in expected.items():
        path, entry = by_name[name]
        assert entry["mime_type"].startswith("image/"), (name, entry["mime_type"])
        assert decode_data_uri(entry["data_uri"]) == (results_root / path).read_bytes(), name
        assert phrase in text_of(entry["caption"]), (name, text_of(entry["caption"]))
        listed = [p for subcat in categories.get(category, {}).values() for p in subcat]
        assert path in listed, f"{name} is not in category {category!r}: {categories}"

    seen = browse(report, workdir)
    assert set(categories) <= set(seen["menu"]), seen["menu"]
    records = {r["path"]: r for r in seen["records"]}
    for name, (_category, phrase) in expected.items():
        record = records[by_name[name][0]]
        assert record["eye"], f"{name}: no eye button in its info panel"
        assert record["img"], f"{name}: the figure did not appear in the page"
        assert min(record["natural"]) > 0, f"{name}: the browser could not decode the figure"
        assert min(record["box"]) > 50, f"{name}: the figure is not laid out ({record['box']})"
        assert phrase in " ".join((record["caption"] or "").split()), f"{name}: caption not shown"

    first = by_name[next(iter(expected))][0]
    shot = screenshot(report, workdir, first)
    assert shot.shape[:2] == (1000, 1600), shot.shape
    # the figure is drawn in the right part of the page (the info panel takes the left)
    content = (shot[:, 1000:, :3] * 255).astype(np.uint8)
    inked = np.mean(content.min(axis=-1) < 200)
    assert inked > 0.005, f"no figure on screen ({inked:.2%} of the content area inked)"


# ---------------------------------------------------------------------------- captions

FULL_CONFIG = {
    "seed": 0,
    "probe_size": 500,
    "experiments": {
        "exp": {
            "model": "vgg_svhn",
            "width": 0.25,
            "dataset": "digits",
            "runs": 3,
            "train": {
                "epochs": 10,
                "batch_size": 64,
                "optimizer": "sgd",
                "lr": 0.05,
                "weight_decay": 5.0e-4,
                "schedule": {"kind": "step", "milestones": [6], "gamma": 0.1},
            },
            "prune": {
                "iterations": 4,
                "rate": 0.2,
                "scope": "global",
                "retrain": "lrr",
                "prune_output_layer": False,
            },
        }
    },
    "metrics": {"cka": {"reshape": "flatten"}, "svcca": {"reshape": "channels", "keep": 0.99}},
}


class _Snakemake:
    """What a caption template sees (Snakemake passes its own object with these attributes)."""

    def __init__(self, config, wildcards):
        self.config, self.wildcards = config, wildcards


class _Wildcards:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def render_caption(name: str, config: dict, **wildcards) -> str:
    """Render a caption like ``snakemake --report`` (Jinja2, then reST) and return its text."""
    from docutils.core import publish_parts
    from jinja2 import Environment

    env = Environment(trim_blocks=True, lstrip_blocks=True)  # as snakemake.report does
    source = (CAPTIONS / name).read_text()
    rst = env.from_string(source).render(snakemake=_Snakemake(config, _Wildcards(**wildcards)))
    # halt on reST warnings: a broken caption would render as an error box in the report
    body = publish_parts(
        rst, writer="html", settings_overrides={"halt_level": 2, "report_level": 2}
    )["body"]
    return text_of(body)


CAPTION_FILES = sorted(p.name for p in CAPTIONS.glob("*.rst"))


def test_caption_files_exist():
    assert {
        "workflow.rst",
        "accuracy.rst",
        "similarity.rst",
        "output_similarity.rst",
        "mask_overlap.rst",
    } <= set(CAPTION_FILES)


@pytest.mark.parametrize("name", CAPTION_FILES)
def test_caption_shows_the_settings(name):
    text = render_caption(name, FULL_CONFIG, experiment="exp")
    if name != "workflow.rst":
        for word in ("exp", "vgg_svhn", "digits"):
            assert word in text, text
    if name in ("accuracy.rst", "workflow.rst"):
        for word in ("20 %", "lrr"):
            assert word in text, text
    if name in ("similarity.rst", "workflow.rst"):
        for word in ("keep = 0.99", "reshape = flatten"):
            assert word in text, text


@pytest.mark.parametrize("name", CAPTION_FILES)
@pytest.mark.parametrize(
    ("config", "wildcards"),
    [
        ({}, {}),
        ({"experiments": {"exp": {}}, "metrics": {"cosine": {}}}, {"experiment": "exp"}),
        (FULL_CONFIG, {"experiment": "not-in-config"}),
    ],
    ids=["empty", "bare", "unknown-experiment"],
)
def test_caption_survives_sparse_config(name, config, wildcards):
    assert render_caption(name, config, **wildcards)


FIGURE_SETTINGS_ON = {
    "density_axis": "prunable",
    "similarity_bands": True,
    "similarity_ylim": "unit",
}
SIMILARITY_CAPTIONS = ("similarity.rst", "layerwise.rst", "output_similarity.rst")


def test_new_captions_exist():
    assert {"layerwise.rst", "accuracy_all.rst"} <= set(CAPTION_FILES)


def test_control_captions_say_what_is_compared():
    config = {**FULL_CONFIG}
    config["experiments"] = {
        "exp": {
            **FULL_CONFIG["experiments"]["exp"],
            "controls": {"seed_baseline": 3, "random_pruning": [2], "run_vs_run": {"max_pairs": 4}},
        }
    }
    assert "at most 4 pairs" in render_caption("run_vs_run.rst", config, experiment="exp")
    assert "[2]" in render_caption("random_pruning.rst", config, experiment="exp")
    for name in ("layerwise.rst", "similarity.rst"):
        text = render_caption(name, config, experiment="exp")
        assert "grey band" in text
        assert "3 dense network(s)" in text
        assert "grey band" not in render_caption(name, FULL_CONFIG, experiment="exp")


@pytest.mark.parametrize("name", ["accuracy.rst", "accuracy_all.rst"])
def test_accuracy_captions_name_the_band_and_the_density_axis(name):
    text = render_caption(name, FULL_CONFIG, experiment="exp")
    assert "± 2 standard deviations" in text
    assert "proportion of all parameters" in text
    assert "density_axis = all_params" in text
    text = render_caption(name, {**FULL_CONFIG, "figures": FIGURE_SETTINGS_ON}, experiment="exp")
    assert "proportion of prunable weights remaining" in text
    assert "density_axis = prunable" in text


@pytest.mark.parametrize("name", SIMILARITY_CAPTIONS)
def test_similarity_captions_say_whether_bands_are_drawn(name):
    off = render_caption(name, FULL_CONFIG, experiment="exp")
    assert "no band" in off
    assert "similarity_bands = False" in off
    assert "fitted to" in off
    assert "similarity_ylim = data" in off
    assert "all parameters" in off
    on = render_caption(name, {**FULL_CONFIG, "figures": FIGURE_SETTINGS_ON}, experiment="exp")
    assert "± 1 standard deviation over runs" in on
    assert "no band" not in on
    assert "similarity_bands = True" in on
    assert "similarity_ylim = unit" in on
    assert "[0, 1]" in on
    assert "prunable weights" in on


def test_mask_overlap_caption_explains_iteration_one():
    text = render_caption("mask_overlap.rst", FULL_CONFIG, experiment="exp")
    assert "Jaccard index is 1 at iteration 1" in text
    assert "same dense network" in text
    assert "data order" in text


# ---------------------------------------------------------------------------- reports

THROWAWAY_SNAKEFILE = """
configfile: "config.yaml"


report: "report/workflow.rst"


rule all:
    input:
        "results/exp/figures/accuracy.svg",
        "results/exp/figures/similarity_cka.svg",
        "results/figures/accuracy_all.svg",


rule plot:
    input:
        accuracy="tables/accuracy.csv",
        similarity="tables/similarity.csv",
        masks="tables/masks.csv",
    output:
        accuracy=report(
            "results/{experiment}/figures/accuracy.svg",
            caption="report/accuracy.rst",
            category="Accuracy",
            subcategory="{experiment}",
        ),
        similarity_cka=report(
            "results/{experiment}/figures/similarity_cka.svg",
            caption="report/similarity.rst",
            category="Similarity",
            subcategory="cka",
            labels={"experiment": "{experiment}", "metric": "cka"},
        ),
        layerwise=report(
            "results/{experiment}/figures/layerwise.svg",
            caption="report/layerwise.rst",
            category="Similarity",
            subcategory="layerwise, four metrics",
        ),
        layerwise_png="results/{experiment}/figures/layerwise.png",
        output_similarity=report(
            "results/{experiment}/figures/output_similarity.svg",
            caption="report/output_similarity.rst",
            category="Similarity",
            subcategory="output layer",
        ),
        mask_overlap=report(
            "results/{experiment}/figures/mask_overlap.svg",
            caption="report/mask_overlap.rst",
            category="Masks",
            subcategory="{experiment}",
        ),
    run:
        from prunesim import plotting

        style = dict(bands=config["figures"]["similarity_bands"], ylim="data")
        plotting.plot_accuracy(input.accuracy, output.accuracy)
        plotting.plot_layerwise(input.similarity, "cka", output.similarity_cka, **style)
        plotting.plot_layerwise_grid(
            input.similarity, [output.layerwise, output.layerwise_png], **style
        )
        plotting.plot_output_similarity(input.similarity, output.output_similarity, **style)
        plotting.plot_mask_overlap(
            input.masks, output.mask_overlap, subject="vgg_svhn on digits"
        )


rule plot_accuracy_all:
    input:
        accuracy="tables/accuracy.csv",
    output:
        figure=report(
            "results/figures/accuracy_all.svg",
            caption="report/accuracy_all.rst",
            category="Accuracy",
            subcategory="all experiments",
        ),
    run:
        from prunesim import plotting

        plotting.plot_accuracy_all({"exp": input.accuracy}, output.figure)
"""

# What the throwaway report must show: {file name: (category, caption phrase)}.
THROWAWAY_FIGURES = {
    "accuracy.svg": ("Accuracy", "Test accuracy under Iterative Magnitude Pruning"),
    "similarity_cka.svg": ("Similarity", "Layerwise similarity of pruned and dense"),
    "layerwise.svg": ("Similarity", "Layerwise similarity under four metrics"),
    "output_similarity.svg": ("Similarity", "Similarity of the output layer"),
    "mask_overlap.svg": ("Masks", "Why the Jaccard index is 1 at iteration 1"),
    "accuracy_all.svg": ("Accuracy", "all experiments side by side"),
}


def _synthetic_tables(tables: Path) -> None:
    import pandas as pd

    from prunesim.layers import compared_layers

    rng = np.random.default_rng(0)
    acc = [dict(run=None, iteration=0, density=1.0, density_all_params=1.0, test_accuracy=0.95)]
    sim, masks = [], []
    for run in range(3):
        for k in range(1, 5):
            densities = dict(density=0.8**k, density_all_params=0.02 + 0.98 * 0.8**k)
            acc.append(dict(run=run, iteration=k, **densities, test_accuracy=0.95 - 0.01 * k))
            for metric in ("svcca", "pwcca", "cka", "nbs", "cosine"):
                for index, (layer, kind) in enumerate(compared_layers("vgg_svhn")):
                    if metric == "cosine" and kind != "out":
                        continue
                    value = 1 - 0.05 * k - 0.01 * index + rng.normal(0, 0.005)
                    sim.append(
                        dict(run=run, iteration=k, **densities, layer=layer, layer_index=index,
                             layer_kind=kind, metric=metric, value=value, note=None,
                             layer_b=layer)
                    )  # fmt: skip
    for k in range(1, 5):
        for run_a, run_b in ((0, 1), (0, 2), (1, 2)):
            for layer in ("features.0.weight", "features.3.weight", "all"):
                jaccard = 1.0 if k == 1 else 0.9 - 0.1 * k + rng.normal(0, 0.01)
                masks.append(
                    dict(experiment="exp", iteration=k, density=0.8**k, layer=layer,
                         run_a=run_a, run_b=run_b, jaccard=jaccard)
                )  # fmt: skip
    tables.mkdir(parents=True)
    for name, rows in (("accuracy", acc), ("similarity", sim)):
        table = pd.DataFrame(rows).assign(model="vgg_svhn", dataset="digits")
        table.to_csv(tables / f"{name}.csv", index=False)
    pd.DataFrame(masks).to_csv(tables / "masks.csv", index=False)


def _snakemake(workdir: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(workdir), "--cores", "1"]
    proc = subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=600, cwd=workdir,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip
    assert proc.returncode == 0, (
        f"snakemake {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )


@pytest.fixture(scope="module")
def throwaway_report_html(tmp_path_factory) -> Path:
    """Report of a minimal workflow using the real captions and plot functions."""
    workdir = tmp_path_factory.mktemp("throwaway")
    (workdir / "Snakefile").write_text(THROWAWAY_SNAKEFILE)
    config = {**FULL_CONFIG, "figures": {"similarity_bands": True}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copytree(CAPTIONS, workdir / "report")
    _synthetic_tables(workdir / "tables")
    _snakemake(workdir)
    report = workdir / "report.html"
    _snakemake(workdir, "--report", str(report))
    return report


@pytest.fixture(scope="module")
def tiny_report_html(tiny_workflow, tmp_path_factory) -> Path:
    """Report of the tiny config's end-to-end run (``tiny_workflow`` from conftest)."""
    from conftest import snakemake

    report = tmp_path_factory.mktemp("tiny_report") / "report.html"
    snakemake(tiny_workflow, "--report", str(report))
    return report


@pytest.mark.browser
def test_throwaway_report_shows_figures(throwaway_report_html, tmp_path):
    assert_report_shows(
        throwaway_report_html, tmp_path, THROWAWAY_FIGURES, throwaway_report_html.parent
    )
    # the captions name the figure settings of the run (bands switched on in its config)
    results = embedded(throwaway_report_html, "results")
    captions = {entry["name"]: text_of(entry["caption"]) for entry in results.values()}
    assert "the bands are ± 1 standard deviation over runs" in captions["layerwise.svg"]
    assert "similarity_bands = True" in captions["similarity_cka.svg"]
    assert "± 2 standard deviations" in captions["accuracy_all.svg"]
    workflow_text = text_of(embedded_workflow_desc(throwaway_report_html))
    assert "vgg_svhn" in workflow_text
    assert "keep = 0.99" in workflow_text


def embedded_workflow_desc(report: Path) -> str:
    match = re.search(r"var workflow_desc = (\".*?\");\s*</script>", report.read_text(), re.S)
    assert match, "report has no workflow description"
    return json.loads(match.group(1))


@pytest.mark.workflow
@pytest.mark.browser
def test_tiny_report_shows_every_figure(tiny_report_html, tiny_workflow, tmp_path):
    config = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())
    expected = {
        "accuracy.svg": ("Accuracy", "Test accuracy under Iterative Magnitude Pruning"),
        "output_similarity.svg": ("Similarity", "Similarity of the output layer"),
        "mask_overlap.svg": ("Masks", "Overlap of the pruning masks"),
        "layerwise.svg": ("Similarity", "Layerwise similarity under four metrics"),
        "accuracy_all.svg": ("Accuracy", "all experiments side by side"),
    }
    for metric in config["metrics"]:
        if metric != "cosine":  # output layer only: in the output-layer figure
            expected[f"similarity_{metric}.svg"] = ("Similarity", "Layerwise similarity")
    for metric in config["experiments"]["tiny"]["cross_layer"]["metrics"]:
        expected[f"cross_layer_{metric}.svg"] = ("Similarity", "Cross-layer similarity")
    # the controls' figures (tiny turns on one of each)
    expected["random_pruning.svg"] = ("Controls", "Random pruning at IMP's per-layer counts")
    expected["run_vs_run.svg"] = ("Controls", "Run against run")
    # tiny turns on the intrinsic dimension (opt-in)
    expected["intrinsic_dimension.svg"] = ("Intrinsic dimension", "Intrinsic dimension of each")
    assert_report_shows(tiny_report_html, tmp_path, expected, tiny_workflow)
    names = {entry["name"] for entry in embedded(tiny_report_html, "results").values()}
    assert "similarity_cosine.svg" not in names
    assert not any(name.endswith(".png") for name in names), "PNGs are copies, not report items"
    # the accuracy table is in the report too, as a table under Accuracy
    results = embedded(tiny_report_html, "results")
    tables = [entry for entry in results.values() if entry["name"] == "accuracy.csv"]
    assert len(tables) == len(config["experiments"])  # one per experiment
    assert all("Accuracy table" in text_of(table["caption"]) for table in tables)


def test_tiny_report_zip_holds_every_figure(tiny_workflow, tmp_path):
    import zipfile

    from conftest import snakemake

    report = tmp_path / "report.zip"
    snakemake(tiny_workflow, "--report", str(report))
    with zipfile.ZipFile(report) as archive:
        names = archive.namelist()
    figures = {Path(name).name for name in names if name.endswith(".svg")}
    assert {
        "accuracy.svg",
        "accuracy_all.svg",
        "layerwise.svg",
        "mask_overlap.svg",
        "cross_layer_cka.svg",
        "random_pruning.svg",
        "run_vs_run.svg",
        "intrinsic_dimension.svg",
    } <= figures
    assert "similarity_cosine.svg" not in figures
    assert any(name.endswith("report.html") for name in names)
