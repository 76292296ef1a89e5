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
# # 1. Ingest and stage
#
# What this run's build did (`convo run` builds first, then runs the notebooks): which event
# files it read, the rows it rejected with their reasons, the events it staged, and the tables it
# changed. The build staged the events it could type and kept the rest as rejected rows, recomputed
# every table the new events touch, audited the result and published it. The notebooks after this
# one report on the version it published.

# %% tags=["parameters"]
env = "dev"  # environment from convo.toml
config_file = None  # convo.toml to read (None: found from the working directory up, or $CONVO_CONFIG)
warehouse = None  # warehouse file (None: the environment's)
run_date = None  # logical date of the run, YYYY-MM-DD (None: the day of the newest event)
run_id = None  # the run whose build to show (None: the build that wrote the published version)

# %%
from convo.reports import reporting

reporting.setup_notebook()
environment = reporting.environment(env, config_file, warehouse)
run = reporting.run_or_published_build(environment, run_id)

# %%
reporting.headline_build(run)

# %% [markdown]
# ## The build
# Which run this is, its status and the version it published (times and ids vary, so the
# regression test does not compare this cell).

# %% tags=["nbval-ignore-output"]
reporting.run_header(environment, run, reporting.as_of(environment, run_date))

# %% [markdown]
# ## Files read
# Every row of a file is staged, rejected or counted as a duplicate of an earlier row; a file
# whose content was already ingested is skipped.

# %%
reporting.files_read(environment, run)

# %% [markdown]
# ## Rejected rows
# Rows that could not be typed, with the raw text and every reason. They are kept in
# `rejected_conversation_events`, never dropped silently.

# %%
reporting.rejected_rows(environment, run)

# %% [markdown]
# ## What was staged
# The events this run added to `stg_conversation_events`, by type and by day.

# %%
reporting.staged_by_event(environment, run)

# %%
reporting.chart_staged_per_day(environment, run)

# %%
reporting.table_changes(run, "staging")
