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
# # 4. Data quality
#
# What the build checked before it published, and what the published data says about its own
# completeness: every input row accounted for, every rejected row with a reason, and how recent
# the newest event is. This notebook reads the version the build published; it changes nothing.

# %% tags=["parameters"]
env = "dev"  # environment from convo.toml
config_file = None  # convo.toml to read (None: found from the working directory up, or $CONVO_CONFIG)
warehouse = None  # warehouse file (None: the environment's)
run_date = None  # logical date of the run, YYYY-MM-DD (None: the day of the newest event)
stale_after_days = 2  # the newest event may be this many days older than the run date

# %%
from convo.reports import reporting

reporting.setup_notebook()
environment = reporting.environment(env, config_file, warehouse)
run = reporting.published_build(environment)
on = reporting.as_of(environment, run_date)

# %%
reporting.headline_quality(run)

# %% [markdown]
# ## The build
# The build that wrote the published version (ids and times vary, so the regression test does
# not compare this cell).

# %% tags=["nbval-ignore-output"]
reporting.version_header(environment, run, on)

# %% [markdown]
# ## Checks
# The build audits the unpublished version and publishes it only if every error-level check
# passes; failed warnings are published and listed here.

# %%
reporting.failed_checks(run)

# %%
reporting.check_summary(run)

# %% [markdown]
# Checks that did not run: they need a threshold from `[environments.<env>.checks]` in
# `convo.toml`, or an earlier build to compare with.

# %%
reporting.skipped_checks(run)

# %% [markdown]
# Every check, failures first.

# %%
reporting.checks(run)

# %% [markdown]
# ## Every row accounted for
# Per ingested file: rows read = rows staged + rows rejected + duplicates removed.

# %%
reporting.reconciliation(environment)

# %%
reporting.rejected_by_reason(environment)

# %% [markdown]
# ## Freshness

# %%
reporting.measured_on(run_date, on)

# %%
reporting.freshness(environment, on, stale_after_days)
