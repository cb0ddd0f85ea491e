"""Alert sinks against real local servers: a loopback HTTP receiver and an SMTP server."""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sitewatch.catalog.models import Alert, Site
from sitewatch.errors import ConfigError, SitewatchError
from sitewatch.monitor.config import load_config
from sitewatch.monitor.sinks import (
    EmailSink,
    JsonlSink,
    LogSink,
    WebhookSink,
    deliver,
    sign,
    sink_from_config,
)
from sitewatch.network import UnsafeUrlError, check_url

SITE = Site(id="sakkanmol", name="Sakkanmol", lon=126.108, lat=38.585)
ALERT = Alert(
    id="a1",
    site_id="sakkanmol",
    rule="changed_area",
    message="1,250 m2 changed",
    key="k1",
    severity="warning",
    details={"area_m2": 1250.0},
    created_at=datetime(2026, 1, 2, tzinfo=UTC),
)


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Recv", (_Receiver,), {"received": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


def test_webhook_is_signed_and_verifiable(receiver: tuple[str, type[_Receiver]]) -> None:
    url, handler = receiver
    sink = WebhookSink(url, b"s3cret", allow_private=True)
    sink.send(ALERT, SITE)
    assert len(handler.received) == 1
    headers, body = handler.received[0]
    expected = sign(b"s3cret", headers["X-Sitewatch-Timestamp"], body)
    assert hmac.compare_digest(headers["X-Sitewatch-Signature"], expected)
    assert not hmac.compare_digest(
        headers["X-Sitewatch-Signature"], sign(b"wrong", headers["X-Sitewatch-Timestamp"], body)
    )
    doc = json.loads(body)
    assert doc["site_name"] == "Sakkanmol" and doc["details"] == {"area_m2": 1250.0}
    assert "s3cret" not in repr(sink)


def test_webhook_failure_is_reported(receiver: tuple[str, type[_Receiver]]) -> None:
    url, handler = receiver
    handler.status = 403
    sink = WebhookSink(url, b"k", allow_private=True, retries=2)
    with pytest.raises(SitewatchError, match="HTTP 403"):
        sink.send(ALERT, SITE)
    assert len(handler.received) == 1  # a 4xx is not retried
    result = deliver([(ALERT, SITE)], [sink, LogSink()])
    assert result.sent == 1 and len(result.failed) == 1


def test_webhook_refuses_internal_addresses() -> None:
    for url in (
        "http://127.0.0.1:9/x",
        "http://169.254.169.254/latest",
        "http://10.0.0.5/",
        "http://[::1]/",
        "http://[::ffff:192.168.1.1]/",
    ):
        with pytest.raises(UnsafeUrlError, match="request forgery"):
            WebhookSink(url, b"k")
    with pytest.raises(UnsafeUrlError, match="credentials"):
        check_url("https://user:pw@example.org/")
    with pytest.raises(UnsafeUrlError, match="must use"):
        check_url("file:///etc/passwd")
    assert check_url("https://93.184.216.34/hook") == "https://93.184.216.34/hook"


def test_email_through_a_local_smtp_server() -> None:
    from aiosmtpd.controller import Controller

    got: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            got.append(envelope)
            return "250 OK"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        EmailSink("127.0.0.1", port, "sitewatch@example.org", ["analyst@example.org"]).send(
            ALERT, SITE
        )
    finally:
        ctl.stop()
    assert len(got) == 1
    assert got[0].rcpt_tos == ["analyst@example.org"]
    text = got[0].content.decode()
    assert "Subject: [sitewatch warning] Sakkanmol: 1,250 m2 changed" in text


def test_jsonl_and_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "sub" / "alerts.jsonl"
    sink = JsonlSink(path)
    sink.send(ALERT, SITE)
    sink.send(ALERT, None)
    lines = path.read_text().splitlines()
    assert [json.loads(x)["site_name"] for x in lines] == ["Sakkanmol", None]
    with caplog.at_level(logging.INFO, logger="sitewatch.alerts"):
        LogSink().send(ALERT, SITE)
    assert "Sakkanmol: 1,250 m2 changed" in caplog.text


def test_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        '[rules]\nmin_changed_area_m2 = 900\n[[sinks]]\ntype = "jsonl"\npath = "x.jsonl"\n'
        '[[sinks]]\ntype = "webhook"\nurl = "https://93.184.216.34/h"\nsecret_env = "HOOK_KEY"\n'
    )
    with pytest.raises(ConfigError, match="HOOK_KEY"):
        load_config(cfg)
    monkeypatch.setenv("HOOK_KEY", "abc")
    conf = load_config(cfg)
    assert conf.rules.min_changed_area_m2 == 900
    assert [s.name for s in conf.sinks] == ["jsonl", "webhook"]
    assert load_config(tmp_path / "missing.toml").rules.min_changed_area_m2 == 400
    with pytest.raises(ConfigError, match="environment variable"):
        sink_from_config({"type": "webhook", "url": "https://93.184.216.34/", "secret": "plain"})
    with pytest.raises(ConfigError, match="unknown sink type"):
        sink_from_config({"type": "pager"})
    bad = tmp_path / "bad.toml"
    bad.write_text("[rules]\nmin_area = 3\n")
    with pytest.raises(ConfigError, match="unknown rule"):
        load_config(bad)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[rules]\nmin_changed_area_m2 = "big"\n', "min_changed_area_m2 must be a number"),
        ("[rules]\nmin_changed_area_m2 = -5\n", "at least 0"),
        ('[rules]\nphase_transitions = "false"\n', "phase_transitions must be true or false"),
        ("[rules]\nmax_cloud = 30\n", "max_cloud is a share from 0 to 1"),
        ("[rules]\nmin_feature_area_m2 = 900\nmax_feature_area_m2 = 50\n", "is above max_feature"),
        ('[[sinks]]\ntype = "webhook"\n', r"sink 1 \(webhook\): a webhook sink needs a 'url'"),
        (
            '[[sinks]]\ntype = "webhook"\nurl = "https://93.184.216.34/"\nallow_private = "no"\n',
            "allow_private must be true or false",
        ),
        (
            '[[sinks]]\ntype = "log"\n[[sinks]]\ntype = "email"\nhost = "h"\nsender = "s@x.org"\n'
            'to = "a@x.org"\nport = "smtp"\n',
            r"sink 2 \(email\): port must be a whole number",
        ),
        ('[[sinks]]\ntype = "email"\nhost = "h"\nsender = "s@x.org"\nto = [1]\n', "to must be"),
        ('sinks = "log"\n', r"\[\[sinks\]\] tables"),
    ],
)
def test_config_typos_are_refused_not_guessed(tmp_path: Path, toml: str, message: str) -> None:
    """A value of the wrong type would otherwise become a silent wrong rule: '"false"' is true
    to Python, a string of addresses would be mailed letter by letter."""
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(cfg)


def test_config_named_but_missing_is_an_error(tmp_path: Path) -> None:
    """The default file may be absent (the defaults apply); a file the analyst named may not."""
    assert load_config(tmp_path / "missing.toml").sinks[0].name == "log"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", required=True)


def test_one_email_address_is_a_list_of_one() -> None:
    sink = sink_from_config({"type": "email", "host": "h", "sender": "s@x.org", "to": "a@x.org"})
    assert sink.to == ["a@x.org"]  # type: ignore[attr-defined]
