"""Sphinx configuration of the documentation site.

Build it with `convo docs` (or `convo run`), not by pointing sphinx-build at this folder: the
pages are generated into reports/.site-build/src from the model metadata and the warehouse, next
to the hand-written pages copied from site/, and sphinx-build reads this file with `-c <repo>`.
"""

project = "convo"
author = "convo data team"
copyright = "convo data team"

extensions = ["myst_nb", "convo.site.sphinx_ext"]

# MyST: `:::` fences for admonitions and definition lists in the hand-written pages.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Notebooks are shown as `convo run` executed them, outputs included: never run again here.
nb_execution_mode = "off"
# Widget outputs would pull require.js and the widget manager from a CDN: the site stays offline.
nb_ipywidgets_js = {}
# LaTeX outputs would need MathJax from a CDN; their plain-text or HTML form is shown instead.
nb_mime_priority_overrides = [("html", "text/latex", None)]

# Data values, check names and SQL must read exactly as stored: no typographic quotes or dashes.
smartquotes = False

exclude_patterns = ["_generated"]  # fragments included by pages, not pages themselves

html_theme = "pydata_sphinx_theme"
# A list of this build's own: the theme appends its folder to it, and Sphinx's default list is
# shared by every build in a process, so a second build would see a changed setting and rewrite
# every page (the site is built incrementally: lib/convo/site/incremental.py).
templates_path = []
html_static_path = ["site/_static"]  # relative to this file
html_css_files = ["convo.css"]
html_copy_source = False
html_show_sourcelink = False
html_context = {"default_mode": "light"}  # the diagrams are drawn for a light background
# Top-level pages have no sub-pages: no left sidebar. The right-hand "on this page" list is left
# out where the diagrams and wide tables need the width (the table pages, the diagram pages).
# ("*" matches top-level pages only; a page-specific entry after it wins.)
html_sidebars = {"*": [], "reports/*": []}  # a report uses the page's whole width for its tables and charts
html_theme_options = {
    "secondary_sidebar_items": {"*": ["page-toc"], "data-model": [], "lineage": [], "reports/*": []},
    "navbar_align": "left",
    "header_links_before_dropdown": 6,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["last-updated"],
}
html_last_updated_fmt = "%Y-%m-%d %H:%M UTC"
