"""The leaderboard's rules on constructed records (benchsuite/reporting/): failed seeds and
blown-up episodes, ranks, floor and published verdicts, implementation checks, the
converged mark, the baseline, colours and axes; the HTML page in a real browser."""

import math
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from benchsuite.core import statistics as stats
from benchsuite.reporting import figures, ranking
from benchsuite.reporting.cells import MEAN, ROBUST, cell_for
from benchsuite.reporting.published import verdict
from benchsuite.reporting.rows import build_rows, config_signature

EPISODES = 8


def trial(method, seed, scores=None, *, status="finished", kind="tuned", curve=(),
          test_episodes=EPISODES, protocol=None, **config):
    """A record as the report reads it: `scores` the test episodes' (mse, lower better)."""
    config = {"eval_inner_steps": 5, "test_episodes": test_episodes, **config}
    metrics = {}
    if scores is not None:
        scores = np.asarray(scores, dtype=float)
        summary = stats.finite_summary(scores)
        metrics = {"mse": summary["mean"], "mse_std": summary["std"], "mse_n": len(scores),
                   "mse_diverged": summary["diverged"], "mse_median": summary["median"],
                   "mse_iqm": summary["iqm"],
                   "episode_scores": {"5": stats.encode_scores(scores)}}
    return {"method": method, "seed": seed, "status": status, "config": config,
            "metrics": metrics, "error": None, "stale": False, "curve": list(curve),
            "timing": [], "memory": [],
            "protocol": {"name": protocol or method, "kind": kind, "label": kind,
                         "source": "s"}}


def frame_of(*trials):
    frame = pd.DataFrame(list(trials))
    frame["signature"] = frame.config.map(config_signature)
    frame["timing"] = [{"per_iteration_s": 0.1, "total_s": 1.0}] * len(frame)
    frame["memory"] = [{"peak_bytes": 2**20}] * len(frame)
    return frame


def good(level, seed, spread=0.01):
    """Episode scores around `level`, different per seed."""
    return level + spread * (np.arange(EPISODES) + seed) / EPISODES


def rows_of(frame, implementations=None):
    rows, _, _ = build_rows(frame, "mse", False, implementations)
    return {r.label: r for r in rows}, rows


def test_finite_blow_ups_and_non_finite_episodes_score_alike():
    """An episode 10³ times the seed's median counts as diverged like a non-finite one: the
    robust score trims up to a quarter of them, more fail the seed; the papers' mean leaves
    them out, marked; the diverged column counts them."""
    base = good(1.0, 0)
    finite_blow_up, infinite = base.copy(), base.copy()
    finite_blow_up[3], infinite[3] = 7e5, np.inf
    frame = frame_of(trial("a", 0, finite_blow_up), trial("b", 0, infinite),
                     trial("c", 0, np.r_[base[:6], np.nan, np.inf]),
                     trial("d", 0, np.r_[base[:5], np.nan, np.inf, 1e9]))
    cells = {m: cell_for(frame[frame.method == m], "mse", 5, ROBUST, False) for m in "abcd"}
    # 8 episodes: the two best and the two worst are trimmed, blown up or not
    assert cells["a"].scores == cells["b"].scores == {
        0: pytest.approx(base[[2, 4, 5, 6]].mean())}
    assert cells["c"].failed == 0 and cells["c"].scores[0] == pytest.approx(base[2:6].mean())
    assert cells["d"].failed == 1 and cells["d"].text() == "diverged"   # 3 of 8 blown up
    means = {m: cell_for(frame[frame.method == m], "mse", 5, MEAN, False) for m in "ab"}
    assert means["a"].scores == means["b"].scores == {0: pytest.approx(np.delete(base, 3)
                                                                       .mean())}
    assert means["a"].text() == means["b"].text() and means["a"].text().startswith("1.004*")
    assert cells["a"].diverged_text() == cells["b"].diverged_text() == "12%"
    # an accuracy (higher is better) has no finite blow-up: a large score is a good one
    assert cell_for(frame[frame.method == "a"], "mse", 5, MEAN, True).scores[0] > 1e4


def test_a_row_with_a_failed_seed_never_ranks_above_one_without():
    seeds = range(5)
    frame = frame_of(*[trial("steady", s, good(1.0, s)) for s in seeds],
                     *[trial("fragile", s, good(0.5, s)) for s in seeds[:4]],
                     trial("fragile", 4, status="diverged"),
                     *[trial("worse", s, good(2.0, s)) for s in seeds])
    by_label, rows = rows_of(frame)
    ranks = ranking.ranks_of(rows, False)
    assert ranks == {"steady": 1, "worse": 2, "fragile": 3}
    fragile = by_label["fragile"]
    assert fragile.main.failed == 1 and fragile.main.text().startswith("0.5")
    assert "*" in fragile.main.text() and fragile.main.diverged_text() == "20%, 1 of 5 seeds failed"


def test_floor_words_say_what_the_test_decides():
    seeds = range(3)
    floor = [trial("floor", s, good(1.0, s), kind="floor") for s in seeds]
    near = [trial("near", s, good(1.0 + (0.02 if s else -0.03), s)) for s in seeds]
    far = [trial("far", s, good(1.5, s)) for s in seeds]
    better = [trial("better", s, good(0.5, s)) for s in seeds]
    by_label, rows = rows_of(frame_of(*floor, *near, *far, *better))
    best = ranking.best_floor(rows, False)
    words = {label: ranking.floor_verdict(row, best, False) for label, row in by_label.items()}
    assert words == {"floor": "floor (best)", "near": "below floor (floor, n.s.)",
                     "far": "BELOW floor (floor)", "better": "above"}


def test_published_verdict_is_undecided_when_the_range_cannot_decide():
    assert verdict(+0.5, 0.1, 1.0, 0.25) == "OUTSIDE"
    assert verdict(+0.05, 0.1, 1.0, 0.25) == "within"        # [0.95, 1.15] ⊂ [0.75, 1.25]
    assert verdict(+241, 1600, 0.38, 0.25) == "undecided"    # sinusoid MAML after 5 steps
    assert verdict(0.0, math.nan, 1.0, 0.25) == "undecided"


def test_the_published_comparison_leaves_out_blown_up_episodes_with_the_marks():
    from benchsuite.reporting.published import HEADER, published_rows

    seeds = range(3)
    scores = [good(1.0, s) for s in seeds]
    scores[0][3] = 7e5                      # one finite blow-up, as MAML's on sinusoid
    frame = frame_of(*[trial("m", s, scores[s]) for s in seeds])
    frame["task"] = "t"
    entry = {"task": "t", "method": "m", "metric": "mse", "value": 1.004, "source": "P"}
    row = dict(zip(HEADER, published_rows(frame, "mse", False, [entry])[0]))
    assert row["ours ± 95% CI"].startswith("1.00") and "*" in row["ours ± 95% CI"]
    assert row["diverged"] == "4.2%"         # 1 of 8 episodes on one of 3 seeds
    assert row["paper vs one run"] == "within"


def test_an_implementation_check_is_shown_beside_its_row_not_ranked():
    seeds = range(3)
    frame = frame_of(*[trial("orig", s, good(1.0, s)) for s in seeds],
                     *[trial("copy", s, good(1.0, s) + 1e-4) for s in seeds],
                     *[trial("other", s, good(0.5, s)) for s in seeds])
    by_label, rows = rows_of(frame, {"copy": "orig"})
    ranks = ranking.ranks_of(rows, False)
    assert "copy" not in ranks and ranks == {"other": 1, "orig": 2}
    ordered = [r.label for r in ranking.order(rows, ranks, False)]
    assert ordered == ["other", "orig", "copy"]
    assert ranking.agreement(by_label["copy"], rows) == "checks orig: DIFFERS"  # +1e-4 always
    shuffled = frame_of(*[trial("orig", s, good(1.0, s)) for s in seeds],
                        *[trial("copy", s, good(1.0, s) + [1e-3, -1e-3, 0][s]) for s in seeds])
    by_label, rows = rows_of(shuffled, {"copy": "orig"})
    assert ranking.agreement(by_label["copy"], rows) == "checks orig: agrees"


def test_converged_mark_from_the_last_quarter_of_the_curve():
    def curve(values):
        return [{"iteration": 100 * i, "val_mse": v, "val_mse_ci95": 0.01}
                for i, v in enumerate(values)]

    flat = [trial("flat", s, good(1, s), curve=curve([2, 1.2, 1.0, 1.0 + 0.01 * (-1) ** s,
                                                      1.0])) for s in range(3)]
    rising = [trial("rising", s, good(1, s), curve=curve([2, 1.5, 1.2, 1.0, 0.8 - 0.01 * s]))
              for s in range(3)]
    one = [trial("one", 0, good(1, 0), curve=curve([2, 1.5, 1.2, 1.0, 0.99]))]
    by_label, _ = rows_of(frame_of(*flat, *rising, *one))
    assert by_label["flat"].converged("mse", False) == "yes"
    assert by_label["rising"].converged("mse", False) == "no (still improving)"
    assert by_label["one"].converged("mse", False) == "yes"   # 0.01 < √2 · 0.01
    assert by_label["flat"].converged("mse", True) == "yes"


def test_baseline_and_probability_of_improvement_only_over_episodes():
    seeds = range(3)
    frame = frame_of(*[trial("zeta", s, good(1.0, s), kind="paper") for s in seeds],
                     *[trial("alpha", s, good(0.9, s)) for s in seeds],
                     *[trial("beta", s, good(2.0, s), kind="paper") for s in seeds])
    by_label, rows = rows_of(frame)
    assert ranking.baseline_row(rows, None).label == "beta"     # first paper protocol by name
    assert ranking.baseline_row(rows, "zeta").label == "zeta"
    assert ranking.improvement_text(by_label["alpha"], by_label["beta"], False) == "1 / 1"
    one_episode = frame_of(*[trial(m, s, good(v, s, 0)[:1], test_episodes=1)
                             for m, v in (("x", 1.0), ("y", 2.0)) for s in seeds])
    by_label, _ = rows_of(one_episode)
    assert ranking.improvement_text(by_label["x"], by_label["y"], False) == "1"


def test_the_paper_budget_command_runs_the_rows_grid_on_a_gpu():
    from benchsuite.reporting.tables import paper_budget_command

    _, rows = rows_of(frame_of(*[trial(m, s, good(1.0, s)) for m in ("b", "a") for s in (0, 1)]))
    assert paper_budget_command("sinusoid", rows) == (
        "benchsuite run --methods a,b --tasks sinusoid --budget paper --seeds 5 --device cuda "
        "--out results/paper")
    _, rows = rows_of(frame_of(*[trial(m, 0, good(1.0, 0), kind="named", protocol="betty")
                                 for m in ("imaml", "darts")]))
    assert paper_budget_command("omniglot", rows).startswith(
        "benchsuite run --protocol betty --budget paper --seeds 5")


def test_every_registered_method_has_its_own_fixed_colour_and_marker(registry):
    methods = registry.canonical_methods()
    styles = [figures.style(m, methods) for m in methods]
    assert len({colour for colour, _ in styles}) == len(methods) <= len(figures.palette())
    assert len(set(styles)) == len(methods)
    # fixed: the same whichever methods a figure shows, and the same on every call
    assert figures.style("maml", methods) == figures.style("maml", list(reversed(methods)))
    assert all(figures.style(m, methods) == s for m, s in zip(methods, styles))
    # distinct to the eye: no two colours of the palette closer than 0.2 in RGB
    rgb = np.array([c[:3] for c in figures.palette()])
    distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)
    assert distances[np.triu_indices(len(rgb), 1)].min() > 0.2


def test_log_axes_only_across_a_decade():
    assert figures.log_scale_fits([0.1, 0.5, 1.0])
    assert not figures.log_scale_fits([0.2, 0.5, 1.0])
    assert not figures.log_scale_fits([-1.0, 0.5, 100.0])
    assert not figures.log_scale_fits([])


# -- the HTML page in a browser ----------------------------------------------------------------
BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)


@pytest.mark.skipif(BROWSER is None, reason="no headless browser (chromium) installed: "
                                            "apt-get install chromium to run this test")
def test_html_tables_sort_and_figures_load_in_a_browser(tmp_path):
    from benchsuite.reporting import html
    from benchsuite.reporting.document import Document, Section, Table

    folder = tmp_path / "report"
    (folder / "figures").mkdir(parents=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1])
    fig.savefig(folder / "figures" / "t-curves.png")
    plt.close(fig)
    table = Table("", ["rank", "method", "score"], [["2", "b", "10.5 ± 1"], ["1", "a", "9 ± 1"],
                                                     ["3", "c", "100*"]], numeric=(0, 2))
    page = html.render(Document("Leaderboard", [], [Section("t", "intro", [table], [],
                                                            ["t-curves.png"])]))
    probe = """<script>
    window.addEventListener("load", function () {
      var th = document.querySelectorAll("#table-1 th")[2]; th.click();
      var up = Array.from(document.querySelectorAll("#table-1 tbody tr td:nth-child(2)"))
        .map(function (c) { return c.textContent; }).join("");
      th.click();
      var down = Array.from(document.querySelectorAll("#table-1 tbody tr td:nth-child(2)"))
        .map(function (c) { return c.textContent; }).join("");
      var img = document.querySelector("img");
      document.title = "RESULT " + up + " " + down + " " + img.complete + " " + img.naturalWidth;
    });</script>"""
    (folder / "index.html").write_text(page.replace("</body>", probe + "</body>"))
    result = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                             "--allow-file-access-from-files", "--virtual-time-budget=5000",
                             "--dump-dom", (folder / "index.html").as_uri()],
                            capture_output=True, text=True, timeout=120)
    title = result.stdout.split("<title>")[1].split("</title>")[0]
    up, down, complete, width = title.split()[1:]
    assert (up, down) == ("abc", "cba")       # by the number: 9 < 10.5 < 100, then reversed
    assert complete == "true" and int(width) == 200   # the figure loaded (2 in × 100 dpi)


def test_an_unknown_baseline_is_one_line_and_nothing_written(tmp_path):
    from tests.conftest import REPO
    from tests.test_suite import cli

    result = cli("report", REPO / "results" / "protocols", "--baseline", "no-such-method",
                 "--out", tmp_path / "report")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "unknown method 'no-such-method'" in result.stderr
    assert not (tmp_path / "report").exists()


# -- implementation checks, from the method classes ------------------------------------------
def test_l2l_maml_is_reported_as_a_check_of_maml(registry, tmp_path):
    """`Method.implementation_of` is declared once, on the class; the report reads it."""
    from benchsuite.reporting.report import write_report
    from benchsuite.running import planning, runner
    from benchsuite.running import protocols as protocol_files
    from benchsuite.running.executors import make_executor

    checks = {name: plugin.cls.implementation_of for name, plugin in registry.methods.items()
              if plugin.cls.implementation_of}
    assert checks == {"l2l-maml": "maml"}
    specs = planning.plan(registry, methods="maml,l2l-maml,fomaml", tasks="sinusoid", seeds=2,
                          budget="quick", device="cpu", options={"iterations": 3},
                          set_items=["curve_points=1", "val_episodes=2", "test_episodes=4"],
                          out=tmp_path / "results", protocols=protocol_files.load())
    runner.execute(specs, make_executor("inline", timeout=None, address=None), force=False,
                   quiet=True)
    board, _ = write_report(tmp_path / "results", tmp_path / "report", registry)
    main = board.read_text().split("\n\n| rank")[1].split("\n\n")[0].splitlines()
    ranks = {cells[2].strip(): cells[1].strip() for cells in (line.split("|") for line in main)
             if len(cells) > 3 and cells[2].strip() in ("maml", "l2l-maml", "fomaml")}
    assert ranks["l2l-maml"].startswith("checks maml: ")
    assert ranks["maml"].isdigit() and ranks["fomaml"].isdigit()
    order = [name for name in ranks]
    assert order.index("l2l-maml") == order.index("maml") + 1   # right under the row it checks


def test_the_leaderboard_names_the_grid_files_its_commands_ran():
    from benchsuite.reporting.report import grid_files
    from tests.conftest import REPO

    commands = ["benchsuite run --config reference-omniglot --methods reptile,imaml",
                "benchsuite run --config=demo --jobs 2",
                "benchsuite run --config my-own.toml",  # not a packaged grid: no path
                "benchsuite run --methods maml --tasks sinusoid"]
    assert grid_files(commands) == ["benchsuite/grids/demo.toml",
                                    "benchsuite/grids/reference-omniglot.toml"]
    assert all((REPO / path).is_file() for path in grid_files(commands))
