"""Alerts on failure: a JSON POST to a webhook and/or a shell command, as the environment says.

The webhook URL is a secret (it usually holds a token), so no message ever shows it: problems
name the environment variable that holds it. An alert never raises: a broken webhook must not
hide the run's own error, nor stop the command alert from running.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import urllib.parse
import urllib.request

from convo.config import Environment

log = logging.getLogger(__name__)


def webhook_problem(env: Environment) -> str | None:
    """Why the environment's webhook URL cannot be used (naming its variable, never its value), or None."""
    variable = env.notify.webhook_url_env
    if not variable:
        return None
    url = os.environ.get(variable)
    if not url:
        return f"${variable} is not set"
    if any(c.isspace() or not c.isprintable() for c in url):
        return f"${variable} is not a URL: it holds a space or a control character"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return f"${variable} is not a URL: it does not parse"
    if parts.scheme not in ("http", "https"):
        return f"${variable} is not a URL: it does not start with http:// or https://"
    if not parts.hostname:
        return f"${variable} is not a URL: it names no host"
    return None


def warn_if_unusable(env: Environment) -> None:
    """Said when a command starts, so that a broken webhook is fixed before a failure needs it."""
    if problem := webhook_problem(env):
        log.warning("alerts of environment %s cannot reach the webhook: %s", env.name, problem)


def send(env: Environment, summary: dict) -> None:
    """Deliver the run summary to the webhook and the command; failures are logged, never raised."""
    problem = webhook_problem(env)
    if problem and env.notify.webhook_url_env:
        summary = summary | {"alert_problem": f"webhook not alerted: {problem}"}
    body = json.dumps(summary, default=str).encode()
    if env.notify.webhook_url_env:
        if problem:
            log.warning("alert not sent to the webhook: %s", problem)
        else:
            _post(env.notify.webhook_url_env, os.environ[env.notify.webhook_url_env], body)
    if env.notify.command:
        _run_command(env.notify.command, body)


def _post(variable: str, url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            log.info("alert sent to $%s (HTTP %s)", variable, response.status)
    except Exception as exc:  # whatever it is, the run's own error comes first
        log.warning("alert to $%s failed: %s", variable, _without(url, f"{type(exc).__name__}: {exc}"))


def _without(url: str, text: str) -> str:
    """`text` with the URL and each of its parts that could hold a token blanked out."""
    parts = urllib.parse.urlsplit(url)
    for secret in sorted(
        {url, parts.netloc, parts.path, parts.query, parts.fragment} - {"", "/"}, key=len, reverse=True
    ):
        text = text.replace(secret, "<hidden>")
    return text


def _run_command(command: str, body: bytes) -> None:
    try:
        result = subprocess.run(command, shell=True, input=body, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("alert command did not run: %s", exc)
        return
    if result.returncode:
        log.warning("alert command exited %d: %s", result.returncode, result.stderr.decode(errors="replace"))
