# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Contact reasons
#
# Why do customers contact support, and how does that change over time? Each tag assigned to a
# conversation is a contact reason; `seeds/tag_contact_reasons.csv` names it and groups it into a
# category (tags missing there count as `unmapped`). A conversation with several tags counts once
# under each of its tags, so the counts per reason add up to more than the conversations.

# %% tags=["parameters"]
env = "dev"  # environment from convo.toml
config_file = None  # convo.toml to read (None: found from the working directory up, or $CONVO_CONFIG)
warehouse = None  # warehouse file (None: the environment's)
run_date = None  # logical date of the run, YYYY-MM-DD (unused here: the range below decides)
start = None  # first day of conversations to include, YYYY-MM-DD (None: the first in the data)
end = None  # last day, YYYY-MM-DD (None: the last in the data)
grain = "week"  # "day", "week" or "month"
categories = []  # only these categories (empty: all)
tags = []  # only these tags (empty: all)

# %%
from convo.reports import contact_reasons as cr
from convo.reports import reporting

reporting.setup_notebook()
environment = reporting.environment(env, config_file, warehouse)
selection = cr.selection(environment, start, end, grain, categories, tags)
palette = cr.colours(environment)
volume = cr.volume(environment, selection)
moves = cr.movers(volume)
resolution = cr.resolution(environment, selection)

# %% [markdown]
# ## The answer in short

# %%
cr.summary(selection, volume, moves, resolution)

# %% [markdown]
# ## Volume per reason
# Conversations opened in each period that carry the reason, and the reason's share of all
# conversations opened in that period. Each reason keeps its colour in every chart.

# %%
cr.chart_volume(volume, selection, palette)

# %%
cr.chart_share(volume, selection, palette)

# %%
volume

# %% [markdown]
# ## What grew and what shrank
# The last period against the one before it (a partial last period shows as a drop).

# %%
moves

# %% [markdown]
# ## Resolution per reason
# Over the conversations opened in the range: hours to resolve and first response (median and
# 90th percentile, of those closed), and the reopen rate (closed conversations reopened at least once).

# %%
cr.chart_resolution(resolution, palette)

# %%
resolution

# %% [markdown]
# ## Reasons that come together
# How many conversations carry both reasons of a pair.

# %%
cr.co_occurrence(environment, selection)
