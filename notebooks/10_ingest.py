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
# This notebook runs the build: it reads the event files, stages the events it can type and
# keeps the rest as rejected rows with their reasons, recomputes every table the new events
# touch, audits the result and publishes it, all in one transaction (`convo.build.runner.build`).
# If an error-level check fails nothing is published, the failing checks are shown below and
# the notebook stops. The notebooks after this one report on the version it published.

# %% tags=["parameters"]
env = "dev"  # environment from convo.toml
config_file = None  # convo.toml to read (None: found from the working directory up, or $CONVO_CONFIG)
warehouse = None  # warehouse file (None: the environment's)
inputs = []  # event files, directories or globs (empty: the environment's inputs)
full_refresh = False  # recompute every table from all ingested events instead of what changed
run_date = None  # logical date of the run, YYYY-MM-DD (None: the day of the newest event)

# %%
from convo.reports import reporting

reporting.setup_notebook()
environment = reporting.environment(env, config_file, warehouse)

run = reporting.build(environment, inputs, full_refresh)

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
