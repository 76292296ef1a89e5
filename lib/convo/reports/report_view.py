"""The readers' view of an executed report notebook: its prose and outputs, none of its code.

A support lead opens a report for the answer, so the HTML published for people, and the site's
report pages, hold the notebook's Markdown cells and the outputs of its code cells, in order;
the code, the parameters and the cells that only set things up (no output) are left out. The
executed notebook with its code is kept beside it for engineers (`NN_name.ipynb`,
`NN_name.code.html`), and that is what nbval replays.
"""

from __future__ import annotations

import copy

HIDE_INPUT_TAG = "remove-input"  # myst-nb's tag: the site shows the cell's output only


def for_readers(notebook: dict) -> dict:
    """A copy of `notebook` with its code cells that show nothing removed, and the others tagged to
    hide their code. An error output counts as output: a failed report shows why it stopped."""
    view = copy.deepcopy(notebook)
    kept = []
    for cell in view["cells"]:
        if cell["cell_type"] == "code":
            if not cell.get("outputs"):
                continue
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if HIDE_INPUT_TAG not in tags:
                tags.append(HIDE_INPUT_TAG)
        elif cell["cell_type"] != "markdown":
            continue  # raw cells are for converters, not readers
        kept.append(cell)
    view["cells"] = kept
    return view
