"""Claims verdicts and the report renderers."""

import matplotlib
import pandas as pd
import pytest

from workbench import report

matplotlib.use("Agg")


@pytest.mark.parametrize("mean, std, n, direction, expected", [
    (2.0, 0.5, 3, ">", "holds"),
    (-2.0, 0.5, 3, ">", "contradicted"),
    (0.3, 0.5, 3, ">", "inconclusive"),
    (-2.0, 0.5, 3, "<", "holds"),
    (2.0, float("nan"), 1, ">", "inconclusive"),  # one seed: no spread, no verdict
    (0.1, 0.0, 3, ">", "holds"),  # exact repeats: judged by the mean
])
def test_verdict_rule(mean, std, n, direction, expected):
    assert report.verdict(mean, std, n, 0.0, direction) == expected


def test_verdict_similar_and_t_quantile():
    assert report.verdict(1.02, 0.01, 5, threshold=1.0, direction="~", margin=0.1) == "holds"
    assert report.verdict(2.0, 0.01, 5, threshold=1.0, direction="~", margin=0.1) == "contradicted"
    assert report.verdict(1.09, 0.1, 3, threshold=1.0, direction="~", margin=0.1) == "inconclusive"
    # t_{0.975, 2} = 4.303: mean 1, std 0.4, n 3 -> half width 0.994 (holds); std 0.41 -> 1.019 (inconclusive)
    assert report.verdict(1.0, 0.40, 3) == "holds" and report.verdict(1.0, 0.41, 3) == "inconclusive"
    with pytest.raises(ValueError):
        report.verdict(1.0, 0.1, 3, direction="bigger")


def test_claims_table():
    metrics = {"size": {"pt_gain": [1.5, 2.0, 1.8]}, "obj": {"prefix": [3.0, 3.1, 2.9], "ul2": [3.5, 3.6, 3.4]}}
    claims = [
        report.Claim("C1", "2B-2B beats 2B on PT", 1.8, "size/pt_gain"),
        report.Claim("C2", "PrefixLM beats UL2", 3.6,
                     lambda m: [a - b for a, b in zip(m["obj"]["prefix"], m["obj"]["ul2"], strict=True)]),
        report.Claim("C3", "missing experiment", 4.1, "nope/x"),
    ]
    df = report.claims_table(claims, metrics)
    assert list(df["verdict"]) == ["holds", "contradicted", "inconclusive"]
    assert df.loc[0, "n"] == 3 and df.loc[0, "ours"].startswith("1.77 ±")
    assert "no data" in df.loc[2, "note"]


def test_render_html_self_contained_and_markdown(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    svg = tmp_path / "f.svg"
    fig.savefig(svg)
    table = pd.DataFrame({"id": ["C1"], "verdict": ["holds"]})
    sections = [report.Section("Claims", ["Our verdicts <computed>.", table]), report.Section("Figures", [fig, svg])]
    out = report.render_html(sections, tmp_path / "report.html", provenance={"git_commit": "abc", "m": {"cpu": 2}})
    page = out.read_text()
    assert "data:image/png;base64," in page and "<svg" in page and "&lt;computed&gt;" in page
    assert 'class="holds"' in page and "git_commit" in page and "m.cpu" in page
    assert "src=\"http" not in page and "<link" not in page  # nothing external
    md = report.render_markdown(sections, tmp_path / "README.md", provenance={"git_commit": "abc"}).read_text()
    plt.close(fig)
    assert "| id" in md and "](figures/figures-0.png)" in md and "](f.svg)" in md
    assert (tmp_path / "figures" / "figures-0.png").is_file()


def test_report_tables_show_gapped_integers_and_missing_cells(tmp_path):
    counts = pd.DataFrame({"preset": ["2B", "2B-2B"], "params": [2_614_341_888, 5_596_853_760],
                           "paper": pd.array([None, 5_596_853_760], dtype="Int64"), "matches": [None, True],
                           "flops": [5.1e12, 1.2e13]})
    counts.to_csv(tmp_path / "counts.csv", index=False)
    df = report._read_table(tmp_path / "counts.csv")
    assert str(df["paper"].dtype) == "Int64" and df["flops"].dtype.kind == "f"  # only gapped integers change
    rows = report._markdown_table(df).splitlines()
    assert rows[2].count("—") == 2  # the 2B row has no paper count and no verdict
    assert "5596853760" in rows[3] and "True" in rows[3] and "1.2e+13" in rows[3]
    assert "nan" not in report._markdown_table(df) and "e+09" not in rows[3]
