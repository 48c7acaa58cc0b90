"""MkDocs hook: the committed leaderboards as pages of the documentation site.

Each `reports/<name>/LEADERBOARD.md` becomes the page `results/<name>/index.md`, and its
figures `results/<name>/figures/*.png`, so that the leaderboard's relative figure links
work unchanged; mkdocs.yml lists the pages in its nav. Nothing is copied into docs/.
"""

from pathlib import Path

from mkdocs.structure.files import File

REPORTS = Path(__file__).resolve().parent.parent / "reports"
PAGES = ("reference", "protocols")


def on_files(files, config):
    for name in PAGES:
        folder = REPORTS / name
        files.append(File.generated(config, f"results/{name}/index.md",
                                    abs_src_path=str(folder / "LEADERBOARD.md")))
        for figure in sorted((folder / "figures").glob("*.png")):
            files.append(File.generated(config, f"results/{name}/figures/{figure.name}",
                                        abs_src_path=str(figure)))
    return files
