"""The monitoring job: new scenes, change and activity per site, observations and alerts."""

from __future__ import annotations

from .config import MonitorConfig, Rules, load_config
from .sinks import AlertSink, EmailSink, JsonlSink, LogSink, WebhookSink, deliver

__all__ = [
    "AlertSink",
    "EmailSink",
    "JsonlSink",
    "LogSink",
    "MonitorConfig",
    "Rules",
    "WebhookSink",
    "deliver",
    "load_config",
]
