"""Alert sinks: where alerts go besides the catalog (log, JSON lines, signed webhook, e-mail).

Sinks are configured in the ``[[sinks]]`` tables of the monitor configuration (see
:mod:`sitewatch.monitor.config`). Secrets (webhook keys, SMTP passwords) are never written in
the configuration or the catalog: the configuration names the environment variable that holds
them (``secret_env``, ``password_env``).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import requests

from ..catalog._codec import jsonable
from ..catalog.models import Alert, Site
from ..config import config_value
from ..errors import ConfigError, SitewatchError
from ..network import check_url

__all__ = [
    "AlertSink",
    "Delivery",
    "EmailSink",
    "JsonlSink",
    "LogSink",
    "WebhookSink",
    "alert_payload",
    "deliver",
    "sign",
    "sink_from_config",
]

log = logging.getLogger(__name__)


def alert_payload(alert: Alert, site: Site | None = None) -> dict[str, Any]:
    """The JSON document every sink sends for an alert."""
    data: dict[str, Any] = jsonable(alert)
    data.pop("version", None)
    data["site_name"] = site.name if site else None
    data["site_lat"] = site.lat if site else None
    data["site_lon"] = site.lon if site else None
    return data


class AlertSink(ABC):
    """Somewhere to send alerts."""

    name = "sink"

    @abstractmethod
    def send(self, alert: Alert, site: Site | None = None) -> None:
        """Deliver one alert; raise :class:`SitewatchError` on failure."""


class LogSink(AlertSink):
    """Alerts as log records (logger ``sitewatch.alerts``)."""

    name = "log"

    def __init__(self) -> None:
        self.logger = logging.getLogger("sitewatch.alerts")

    def send(self, alert: Alert, site: Site | None = None) -> None:
        level = {"info": logging.INFO, "warning": logging.WARNING}.get(
            alert.severity, logging.ERROR
        )
        where = site.name if site else alert.site_id
        self.logger.log(level, "[%s] %s: %s (%s)", alert.severity, where, alert.message, alert.rule)


class JsonlSink(AlertSink):
    """One JSON document per line, appended under an exclusive lock and fsync'ed."""

    name = "jsonl"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    def send(self, alert: Alert, site: Site | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(alert_payload(alert, site), ensure_ascii=False, sort_keys=True) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The webhook signature: ``sha256=`` + HMAC-SHA256 of ``timestamp + "." + body``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


class WebhookSink(AlertSink):
    """POST the alert as JSON, signed with HMAC-SHA256 (headers X-Sitewatch-Timestamp/-Signature).

    The receiver recomputes :func:`sign` over the raw body with the shared secret, compares in
    constant time, and rejects timestamps older than a few minutes (replay protection).
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        allow_private: bool = False,
    ) -> None:
        self.url = check_url(url, allow_private=allow_private, what="webhook URL")
        if not secret:
            raise ConfigError("a webhook needs a non-empty secret (set its secret_env variable)")
        self._secret = secret
        self.timeout_s = timeout_s
        self.retries = retries

    def __repr__(self) -> str:  # never show the secret
        return f"WebhookSink(url={self.url!r})"

    def send(self, alert: Alert, site: Site | None = None) -> None:
        body = json.dumps(alert_payload(alert, site), sort_keys=True).encode()
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "sitewatch",
                "X-Sitewatch-Timestamp": ts,
                "X-Sitewatch-Signature": sign(self._secret, ts, body),
            }
            try:
                resp = requests.post(
                    self.url,
                    data=body,
                    headers=headers,
                    timeout=self.timeout_s,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                last = exc
            else:
                if resp.status_code < 300:
                    return
                last = SitewatchError(f"HTTP {resp.status_code}")
                if resp.status_code < 500 and resp.status_code != 429:
                    break  # a client error will not fix itself
            if attempt < self.retries:
                time.sleep(min(8.0, 0.25 * 2**attempt))
        raise SitewatchError(f"webhook {self.url} did not accept alert {alert.id}: {last}")


class EmailSink(AlertSink):
    """E-mail through SMTP (STARTTLS or SMTPS when configured)."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        to: Sequence[str],
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        ssl_mode: bool = False,
        timeout_s: float = 20.0,
    ) -> None:
        if not to:
            raise ConfigError("an email sink needs at least one recipient in 'to'")
        self.host, self.port, self.sender, self.to = host, port, sender, list(to)
        self.username = username
        self._password = password
        self.starttls, self.ssl_mode, self.timeout_s = starttls, ssl_mode, timeout_s

    def __repr__(self) -> str:
        return f"EmailSink(host={self.host!r}, port={self.port}, to={self.to!r})"

    def send(self, alert: Alert, site: Site | None = None) -> None:
        msg = EmailMessage()
        where = site.name if site else alert.site_id
        msg["Subject"] = f"[sitewatch {alert.severity}] {where}: {alert.message}"[:200]
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg.set_content(json.dumps(alert_payload(alert, site), indent=2, ensure_ascii=False))
        try:
            smtp_cls = smtplib.SMTP_SSL if self.ssl_mode else smtplib.SMTP
            with smtp_cls(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self._password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise SitewatchError(
                f"e-mail to {', '.join(self.to)} via {self.host}:{self.port} failed: {exc}"
            ) from exc


def _secret_from_env(cfg: Mapping[str, Any], key: str, what: str) -> str | None:
    var = cfg.get(key)
    if var is None:
        return None
    value = os.environ.get(str(var))
    if value is None:
        raise ConfigError(f"{what}: environment variable {var} (named by {key}) is not set")
    return value


def _get(cfg: Mapping[str, Any], key: str, kind: str, default: Any) -> Any:
    """``cfg[key]`` checked to be of ``kind`` (:func:`~sitewatch.config.config_value`), else
    ``default``."""
    return config_value(key, cfg[key], kind) if key in cfg else default


def sink_from_config(cfg: Mapping[str, Any]) -> AlertSink:
    """Build one sink from its configuration table (``type`` = log, jsonl, webhook, email)."""
    kind = cfg.get("type")
    if kind == "log":
        return LogSink()
    if kind == "jsonl":
        if "path" not in cfg:
            raise ConfigError("a jsonl sink needs a 'path'")
        return JsonlSink(_get(cfg, "path", "text", ""))
    if kind == "webhook":
        if "secret" in cfg:
            raise ConfigError(
                "put the webhook secret in an environment variable and name it in secret_env"
            )
        secret = _secret_from_env(cfg, "secret_env", "webhook sink") or ""
        if "url" not in cfg:
            raise ConfigError("a webhook sink needs a 'url' (https://...)")
        return WebhookSink(
            _get(cfg, "url", "text", ""),
            secret.encode(),
            timeout_s=float(_get(cfg, "timeout_s", "seconds", 10.0)),
            allow_private=_get(cfg, "allow_private", "flag", False),
        )
    if kind == "email":
        if "password" in cfg:
            raise ConfigError(
                "put the SMTP password in an environment variable and name it in password_env"
            )
        missing = [k for k in ("host", "sender", "to") if k not in cfg]
        if missing:
            raise ConfigError(f"an email sink needs {', '.join(missing)}")
        to = config_value("to", cfg["to"], "texts")  # one address, or a list of them
        if not to:
            raise ConfigError("to must name at least one address")
        return EmailSink(
            _get(cfg, "host", "text", ""),
            _get(cfg, "port", "count", 25),
            _get(cfg, "sender", "text", ""),
            list(to),
            username=_get(cfg, "username", "text", None),
            password=_secret_from_env(cfg, "password_env", "email sink"),
            starttls=_get(cfg, "starttls", "flag", False),
            ssl_mode=_get(cfg, "ssl", "flag", False),
        )
    raise ConfigError(f"unknown sink type {kind!r}; use log, jsonl, webhook or email")


@dataclass
class Delivery:
    """What happened when alerts were sent to the sinks."""

    sent: int = 0
    failed: list[str] = field(default_factory=list)


def deliver(alerts: Sequence[tuple[Alert, Site | None]], sinks: Sequence[AlertSink]) -> Delivery:
    """Send every alert to every sink; a failing sink is logged and does not stop the others."""
    result = Delivery()
    for alert, site in alerts:
        for sink in sinks:
            try:
                sink.send(alert, site)
                result.sent += 1
            except SitewatchError as exc:
                log.error("alert %s not delivered to %s: %s", alert.id, sink.name, exc)
                result.failed.append(f"{sink.name}: {exc}")
    return result
