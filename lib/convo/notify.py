"""Alerts on failure: a JSON POST to a webhook and/or a shell command, as the environment says."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import urllib.request

from convo.config import Environment

log = logging.getLogger(__name__)


def send(env: Environment, summary: dict) -> None:
    """Deliver the run summary; a failing alert is logged, never raised over the run's own error."""
    body = json.dumps(summary, default=str).encode()
    if env.notify.webhook_url_env:
        url = os.environ.get(env.notify.webhook_url_env)
        if not url:
            log.warning("alert not sent: $%s is not set", env.notify.webhook_url_env)
        else:
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    log.info("alert sent to $%s (HTTP %s)", env.notify.webhook_url_env, response.status)
            except OSError as exc:
                log.warning("alert to $%s failed: %s", env.notify.webhook_url_env, exc)
    if env.notify.command:
        result = subprocess.run(env.notify.command, shell=True, input=body, capture_output=True, timeout=60)
        if result.returncode:
            log.warning("alert command exited %d: %s", result.returncode, result.stderr.decode(errors="replace"))
