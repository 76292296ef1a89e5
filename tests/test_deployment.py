"""The deployment page's claims are done by files: every file it links exists, every workflow
parses, and the jobs, their order (`needs`) and what the page says they run match the workflows."""

import re

import pytest
import yaml

from conftest import ROOT

PAGE = ROOT / "site" / "deployment.md"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _workflow(path):
    data = yaml.safe_load(path.read_text())
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def _needs(job: dict) -> set[str]:
    needs = job.get("needs", [])
    return {needs} if isinstance(needs, str) else set(needs)


def _job_table(text: str) -> list[tuple[str, str, set[str]]]:
    """(job, workflow file, needs) from the page's table of jobs."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`[\w-]+`", cells[0]) and cells[1].startswith("{src}"):
            needs = set(re.findall(r"`([\w-]+)`", cells[2]))
            rows.append((cells[0].strip("`"), re.search(r"`(.+?)`", cells[1]).group(1), needs))
    return rows


def test_every_file_the_deployment_pages_link_exists():
    linked = re.findall(r"\{src\}`([^`]+)`", PAGE.read_text())
    assert ".github/workflows/ci.yml" in linked and ".github/workflows/scheduled-run.yml" in linked
    assert [path for path in linked if not (ROOT / path).exists()] == []
    readme = ROOT / "deploy" / "README.md"
    targets = [t for t in re.findall(r"\]\(([^)#]+)\)", readme.read_text()) if "://" not in t]
    assert len(targets) >= 6
    assert [t for t in targets if not (readme.parent / t).exists()] == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_parses_with_jobs_that_run_something(path):
    workflow = _workflow(path)
    assert workflow["on"], f"{path.name}: no trigger"
    for name, job in workflow["jobs"].items():
        assert "runs-on" in job and job.get("steps"), f"{path.name}: job {name} runs nothing"
        assert _needs(job) <= set(workflow["jobs"]), f"{path.name}: job {name} needs a job that does not exist"


def test_the_page_names_every_job_with_what_it_needs():
    claimed = _job_table(PAGE.read_text())
    assert [job for job, _, _ in claimed] == ["test", "staging", "prod", "publish-site", "alert"]
    for job, file, needs in claimed:
        jobs = _workflow(ROOT / file)["jobs"]
        assert job in jobs, f"{file} has no job {job}"
        assert _needs(jobs[job]) == needs, f"{file}: job {job} needs {_needs(jobs[job])}, the page says {needs}"
    workflows = {file for _, file, _ in claimed}
    every_job = {(file, job) for file in workflows for job in _workflow(ROOT / file)["jobs"]}
    assert every_job == {(file, job) for job, file, _ in claimed}, "a job the page does not mention"


def test_ci_runs_the_suite_on_every_pull_request_and_push_to_main():
    workflow = _workflow(ROOT / ".github" / "workflows" / "ci.yml")
    assert "pull_request" in workflow["on"] and workflow["on"]["pull_request"] in (None, {})  # every one
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert [s["run"] for s in workflow["jobs"]["test"]["steps"] if "run" in s] == [".ci/run"]


def test_prod_runs_only_the_commit_staging_succeeded_with_and_then_publishes_the_site():
    jobs = _workflow(ROOT / ".github" / "workflows" / "scheduled-run.yml")["jobs"]
    commit = "${{ needs.staging.outputs.commit }}"
    assert jobs["staging"]["outputs"]["commit"] == "${{ steps.commit.outputs.sha }}"
    staged = next(s for s in jobs["staging"]["steps"] if s.get("id") == "commit")
    assert "git rev-parse HEAD" in staged["run"]
    checkout = jobs["prod"]["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["ref"] == commit
    assert any(
        s.get("env", {}).get("STAGED") == commit and "git rev-parse HEAD" in s["run"] for s in jobs["prod"]["steps"]
    )
    runs = [s.get("run", "") for s in jobs["staging"]["steps"] + jobs["prod"]["steps"]]
    assert [r.split(" $")[0] for r in runs if r.startswith(".venv/bin/convo run")] == [
        ".venv/bin/convo run --env staging",
        ".venv/bin/convo run --env prod",
    ]
    uses = [s.get("uses", "") for s in jobs["prod"]["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert jobs["publish-site"]["steps"][0]["uses"].startswith("actions/deploy-pages@")
    assert jobs["publish-site"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert jobs["alert"]["if"] == "failure()"


def test_cron_and_systemd_run_staging_before_prod():
    cron = [
        line
        for line in (ROOT / "deploy" / "cron" / "convo").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(cron) == 1 and re.search(r"convo run --env staging .*&& .*convo run --env prod", cron[0])
    service = (ROOT / "deploy" / "systemd" / "convo-run.service").read_text()
    starts = [line.split("=", 1)[1] for line in service.splitlines() if line.startswith("ExecStart=")]
    assert [s.split()[-1] for s in starts] == ["staging", "prod"]
