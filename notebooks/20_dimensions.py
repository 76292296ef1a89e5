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
# # 2. Dimensions
#
# The published dimensions: the calendar, the users, the agents and the tags with their
# contact reasons. This notebook reads the version the build published; it changes nothing.

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
reporting.headline_dimensions(environment)

# %% [markdown]
# ## The build
# The build that wrote the published version (ids and times vary, so the regression test does
# not compare this cell).

# %% tags=["nbval-ignore-output"]
reporting.version_header(environment, run, on)

# %% [markdown]
# ## What the build changed
# Rows of each dimension after the build, and how many it inserted and retired (a changed row
# is retired and inserted again; unchanged rows are shared by every version).

# %%
reporting.table_changes(run, "dimensions")

# %% [markdown]
# ## dim_date
# A fixed calendar; every event date must fall inside it.

# %%
reporting.date_dimension(environment)

# %% [markdown]
# ## dim_user
# Users by number of conversations they opened (no user source yet, so profile attributes are empty).

# %%
reporting.users(environment)

# %% [markdown]
# ## dim_agent
# Agents who acted on or were assigned to a conversation, busiest first.

# %%
reporting.agents(environment)

# %%
reporting.chart_agent_workload(environment)

# %% [markdown]
# ## dim_tag
# Each tag seen in the events, with its contact reason and category from
# `seeds/tag_contact_reasons.csv`, and how many conversations carry it.

# %%
reporting.unmapped_tags(environment)

# %%
reporting.tags(environment)
