"""Claims verdicts (the five outcomes) and the report renderers."""

import math

import matplotlib
import pandas as pd
import pytest

from workbench import report
from workbench.claims import Paired

matplotlib.use("Agg")

HOLDS, CONTRA, EQUIV, UNDER, NOT = report.VERDICTS


@pytest.mark.parametrize("mean, std, n, direction, margin, expected", [
    # t_{0.975, 2} = 4.303: half-width = 4.303 * std / sqrt(3) = 2.484 * std
    (2.0, 0.5, 3, ">", 0.1, HOLDS),  # [0.76, 3.24]
    (0.8, 0.3, 3, ">", 1.0, HOLDS),  # [0.055, 1.55]: above 0; a point estimate >= margin is not required
    (-2.0, 0.5, 3, ">", 0.1, CONTRA),  # [-3.24, -0.76]
    (-2.0, 0.5, 3, "<", 0.1, HOLDS),
    (2.0, 0.5, 3, "<", 0.1, CONTRA),
    (0.001, 0.0005, 3, ">", 0.01, EQUIV),  # [-0.0002, 0.0022]: any effect is below the margin
    (0.003, 0.0005, 3, ">", 0.01, EQUIV),  # above 0 but inside the margin: equivalence comes first
    (0.0, 0.05, 3, ">", 0.005, UNDER),  # [-0.124, 0.124]
    (0.3, 0.5, 3, ">", 0.1, UNDER),
    (2.0, float("nan"), 1, ">", 0.1, NOT),  # one seed: no spread, no verdict
    (2.0, 0.1, 2, ">", 0.1, NOT),  # two seeds: fewer than MIN_SEEDS
    (float("nan"), float("nan"), 0, ">", 0.1, NOT),  # no data
    (0.1, 0.0, 3, ">", 0.01, HOLDS),  # exact repeats: judged by the mean
])
def test_verdict_rule(mean, std, n, direction, margin, expected):
    assert report.verdict(mean, std, n, 0.0, direction, margin=margin) == expected


def test_a_true_tie_is_equivalent_for_an_at_least_as_good_claim():
    """E2-style: 'simple pooling >= attention pooling' with identical scores is the claim, not a failure."""
    assert report.verdict(0.0, 0.0, 3, direction="≥", margin=0.005) == EQUIV  # exact tie over three seeds
    assert report.verdict(0.0, 0.001, 5, direction=">=", margin=0.005) == EQUIV  # [-0.0012, 0.0012]
    assert report.verdict(0.0, 0.001, 5, direction=">", margin=0.005) == EQUIV  # '>' : no effect of interest
    assert report.verdict(0.01, 0.005, 3, direction="≥", margin=0.005) == HOLDS  # [-0.0024, 0.022]: non-inferior
    assert report.verdict(-0.05, 0.005, 3, direction="≥", margin=0.005) == CONTRA  # [-0.062, -0.038]: worse
    assert report.verdict(-0.004, 0.001, 3, direction="≥", margin=0.005) == UNDER  # [-0.0065, -0.0015]


def test_similar_direction_reason_and_t_quantile():
    assert report.verdict(1.02, 0.01, 5, threshold=1.0, direction="~", margin=0.1) == EQUIV
    assert report.verdict(2.0, 0.01, 5, threshold=1.0, direction="≈", margin=0.1) == CONTRA
    assert report.verdict(1.09, 0.1, 3, threshold=1.0, direction="~", margin=0.1) == UNDER
    assert report.verdict(2.0, 0.5, 3, margin=0.1, reason="capped run") == NOT
    # half-width 0.9935 (std 0.40) vs 1.0187 (std 0.41): holds / underpowered
    assert report.verdict(1.0, 0.40, 3, margin=0.5) == HOLDS and report.verdict(1.0, 0.41, 3, margin=0.5) == UNDER
    lo, hi, half = report.interval(1.0, 0.40, 3)
    assert math.isclose(half, 4.302653 * 0.40 / math.sqrt(3), rel_tol=1e-6) and math.isclose(hi - lo, 2 * half)
    with pytest.raises(ValueError):
        report.verdict(1.0, 0.1, 3, direction="bigger")


def test_claim_states_a_margin_and_its_translation():
    with pytest.raises(ValueError, match="margin"):
        report.Claim("C", "t", "p", "a/b", ">", 0.0, "why")
    with pytest.raises(ValueError, match="translat"):
        report.Claim("C", "t", "p", "a/b", ">", 0.1, " ")
    with pytest.raises(ValueError, match="direction"):
        report.Claim("C", "t", "p", "a/b", "bigger", 0.1, "why")


def test_claims_table_rows_no_data_and_reasons():
    metrics = {"size": {"pt_gain": [1.5, 2.0, 1.8], "tie": [0.0, 0.0, 0.0]},
               "obj": {"prefix": [3.0, 3.1, 2.9], "ul2": [3.5, 3.6, 3.4], "dec": [3.2]}}
    claims = [
        report.Claim("C1", "2B-2B beats 2B on PT", "1.8", "size/pt_gain", ">", 0.1, "t"),
        report.Claim("C2", "PrefixLM beats UL2", "3.6", Paired("obj/prefix", "obj/ul2"), ">", 0.1, "t"),
        report.Claim("C3", "missing experiment", "4.1", "nope/x", ">", 0.1, "t"),
        report.Claim("C4", "tie", "≥", "size/tie", "≥", 0.1, "t"),
        report.Claim("C5", "one-seed baseline", "-", Paired("obj/prefix", "obj/dec"), ">", 0.1, "t"),
        report.Claim("C6", "a check explains", "-", "nope/y", ">", 0.1, "t",
                     check=lambda p: "preset runs no large" if "large" not in p["exp"]["sizes"] else None),
        report.Claim("C7", "capped", "-", "size/pt_gain", ">", 0.1, "t", check=lambda p: "capped run"),
    ]
    df = report.claims_table(claims, metrics, params={"exp": {"sizes": ["small"]}})
    assert list(df["verdict"]) == [HOLDS, CONTRA, NOT, EQUIV, NOT, NOT, NOT]
    assert df.loc[0, "n"] == 3 and df.loc[0, "detectable"] > 0 and df.loc[0, "lo"] > 0
    assert df.loc[1, "measure"] == "obj/prefix − obj/ul2, per seed"
    assert df.loc[2, "n"] == 0 and df.loc[2, "reason"].startswith("no data")
    assert "one seed, copied to every seed" in df.loc[4, "reason"] and df.loc[4, "n"] == 3
    assert df.loc[5, "reason"] == "preset runs no large" and df.loc[6, "reason"] == "capped run"
    assert report.missing_data(df) == ["C3"]  # C6 has no data, but its claim says why
    assert list(report.verdicts_view(df).columns) == ["id", "claim", "test", "n", "mean", "interval", "detectable",
                                                      "verdict", "reason"]
    with pytest.raises(ValueError, match="duplicate"):
        report.claims_table(claims[:1] * 2, metrics)


def test_render_html_self_contained_and_markdown(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    svg = tmp_path / "f.svg"
    fig.savefig(svg)
    table = pd.DataFrame({"id": ["C1", "C2"], "verdict": ["holds", "not measured at this scale"]})
    sections = [report.Section("Claims", ["Our verdicts <computed>.", table]), report.Section("Figures", [fig, svg])]
    out = report.render_html(sections, tmp_path / "report.html", provenance={"git_commit": "abc", "m": {"cpu": 2}})
    page = out.read_text()
    assert "data:image/png;base64," in page and "<svg" in page and "&lt;computed&gt;" in page
    assert 'class="holds"' in page and 'class="not-measured"' in page and "git_commit" in page and "m.cpu" in page
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
