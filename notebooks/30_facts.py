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
# # 3. Facts
#
# The published facts: one row per conversation (status, timings, tags), the
# conversation-tag bridge and the event fact. This notebook reads the version the build
# published; it changes nothing.

# %% tags=["parameters"]
env = "dev"  # environment from convo.toml
config_file = None  # convo.toml to read (None: found from the working directory up, or $CONVO_CONFIG)
warehouse = None  # warehouse file (None: the environment's)
run_date = None  # logical date of the run, YYYY-MM-DD (None: the day of the newest event)

# %%
from convo.reports import reporting

reporting.setup_notebook()
environment = reporting.environment(env, config_file, warehouse)
run = reporting.published_build(environment)
on = reporting.as_of(environment, run_date)

# %%
reporting.headline_facts(environment, on)

# %% [markdown]
# ## The build
# The build that wrote the published version (ids and times vary, so the regression test does
# not compare this cell).

# %% tags=["nbval-ignore-output"]
reporting.version_header(environment, run, on)

# %% [markdown]
# ## What the build changed
# Rows of each fact (and the per-conversation summary they share) after the build, and how many
# rows it inserted and retired.

# %%
reporting.table_changes(run, "intermediate", "facts")

# %% [markdown]
# ## Conversations by status

# %%
reporting.conversation_status(environment)

# %%
reporting.chart_opened_per_week(environment)

# %% [markdown]
# ## Response and resolution
# Hours from the first event to closing (of the closed conversations), minutes from the first
# customer message to the first agent reply after it, and the share of closed conversations a
# customer reopened (definitions: `lib/convo/models/metrics.yml`).

# %%
reporting.resolution(environment)

# %%
reporting.resolution_buckets(environment)

# %%
reporting.chart_resolution(environment)

# %% [markdown]
# ## Open backlog on the run date
# How many conversations were open or waiting for the customer at the end of the run date, then
# the conversations not closed, oldest first, with their age in days on the run date.

# %%
reporting.measured_on(run_date, on)

# %%
reporting.backlog_on(environment, on)

# %%
reporting.open_backlog(environment, on)

# %% [markdown]
# ## Tags
# Share of conversations carrying each tag (a conversation can carry several).

# %%
reporting.top_tags(environment)

# %% [markdown]
# ## A sample of fact_conversation_lifecycle
# The first conversations by id, every column.

# %%
reporting.sample(environment, "fact_conversation_lifecycle")
