"""The message an alert event posts: Slack-compatible JSON (``text`` plus Block Kit ``blocks``).

``text`` alone carries everything (it is what Mattermost, Teams workflows and Slack notifications
show); ``blocks`` lay the same facts out for Slack.
"""

from __future__ import annotations

from typing import Any

_ICON = {"fired": ":rotating_light:", "reminder": ":bell:", "resolved": ":white_check_mark:"}
_WORD = {"fired": "FIRING", "reminder": "STILL FIRING", "resolved": "RESOLVED"}


def payload(alert: dict[str, Any], event: str, console_url: str | None = None) -> dict[str, Any]:
    sev = str(alert["severity"]).upper()
    head = f"{_ICON.get(event, '')} [{_WORD.get(event, event.upper())}] [{sev}] {alert['rule']}".strip()
    text = f"{head}: {alert['summary']}"
    fields = [
        f"*Metric*\n{alert['metric']}",
        f"*Threshold*\n{alert['side']} {alert['threshold']:g}",
        f"*Value*\n{'no data' if alert.get('value') is None else format(alert['value'], '.4g')}",
        f"*Scope*\n{alert['scope_kind']} {alert['scope_id']}",
    ]
    context = f"alert {alert['id']} · opened {alert['opened_at']}"
    if event == "resolved" and alert.get("resolved_at"):
        context += f" · resolved {alert['resolved_at']}"
    if console_url:
        link = f"{console_url.rstrip('/')}/api/alerts/{alert['id']}"
        text += f" <{link}|details>"
        context += f" · <{link}|details>"
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{head}*\n{alert['summary']}"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }
