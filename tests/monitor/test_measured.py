"""The monitor's measured-change alerts: stored measurements say a site is being improved."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import Point, box

from sitewatch.catalog.models import Feature, Measurement, Observation, Site
from sitewatch.catalog.store import Catalog
from sitewatch.errors import ConfigError
from sitewatch.monitor.config import Rules, load_config
from sitewatch.monitor.job import MonitorOptions, measured_change_alerts, monitor_site

LON, LAT = 126.108, 38.585


def _measured(url: str) -> None:
    """A berm measured 12 ± 0.6, 15 ± 0.8 and 17 ± 0.8 m high (2019-2021: +3.0 ± 1.0 m, then
    +2.0 ± 1.1 m), and a portal 9.0 ± 0.3 then 7.0 ± 0.3 m wide (-2.0 ± 0.4 m)."""
    with Catalog(url) as cat:
        cat.add_site(Site(id="base", name="Base", lon=LON, lat=LAT))
        berm = box(LON, LAT, LON + 0.0005, LAT + 0.0001)
        cat.add_feature(Feature("berm", "base", "berm", berm, name="north berm"))
        cat.add_feature(Feature("portal", "base", "ugf_portal", Point(LON, LAT)))
        for y in (2019, 2020, 2021):
            cat.add_observation(Observation(f"o{y}", "base", datetime(y, 5, 1, tzinfo=UTC)))
        for i, (y, h, u) in enumerate(((2019, 12.0, 0.6), (2020, 15.0, 0.8), (2021, 17.0, 0.8))):
            cat.add_measurement(
                Measurement(
                    f"h{i}", "base", "height", h, "m", u, feature_id="berm", observation_id=f"o{y}"
                )
            )
        for i, (y, w) in enumerate(((2019, 9.0), (2021, 7.0))):
            cat.add_measurement(
                Measurement(
                    f"w{i}",
                    "base",
                    "width",
                    w,
                    "m",
                    0.3,
                    feature_id="portal",
                    observation_id=f"o{y}",
                )
            )


def test_one_alert_per_significant_step_and_never_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cat.db'}"
    _measured(url)
    with Catalog(url) as cat:
        new = measured_change_alerts(cat, "base", Rules())
        alerts = {a.details["measurements"][1]: a for a in map(cat.get_alert, new)}
        # the berm's second step (+2.0 ± 1.1 m, 1.8 sigma) is not significant
        assert set(alerts) == {"h1", "w1"}
        grew, shrank = alerts["h1"], alerts["w1"]
        assert (grew.rule, grew.severity, grew.state) == ("measured_change", "warning", "new")
        assert grew.message == (
            "north berm height grew by 3.0 ± 1.0 m between 2019-05-01 and 2020-05-01 "
            "(12.00 ± 0.60 m -> 15.00 ± 0.80 m)"
        )
        assert grew.details["before"] == {"date": "2019-05-01", "value": 12.0, "uncertainty": 0.6}
        assert grew.details["change"] == pytest.approx(3.0)
        assert grew.details["sigma"] == pytest.approx(1.0)
        assert shrank.severity == "info" and shrank.message.startswith(
            "portal width shrank by 2.00 ± 0.42 m between 2019-05-01 and 2021-05-01"
        )
        assert measured_change_alerts(cat, "base", Rules()) == []  # a re-run raises nothing
        # a new image date that shows the berm grew again is a new step, a new alert
        cat.add_observation(Observation("o2022", "base", datetime(2022, 5, 1, tzinfo=UTC)))
        cat.add_measurement(
            Measurement(
                "h3", "base", "height", 21.0, "m", 0.5, feature_id="berm", observation_id="o2022"
            )
        )
        (again,) = measured_change_alerts(cat, "base", Rules())
        assert cat.get_alert(again).details["measurements"] == ["h2", "h3"]


def test_threshold_and_since(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cat.db'}"
    _measured(url)
    with Catalog(url) as cat:
        # 3.5 sigma: the berm's 3-sigma step is not enough, the portal's 4.7-sigma one is; the
        # berm's whole change, 5 sigma over three dates, is an alert of its own
        got = measured_change_alerts(cat, "base", Rules(measured_change_sigmas=3.5))
        alerts = {cat.get_alert(a).details["kind"]: cat.get_alert(a) for a in got}
        assert set(alerts) == {"width", "height"}
        assert alerts["height"].details["dates"] == 3
        assert "over 3 image dates" in alerts["height"].message
    url2 = f"sqlite:///{tmp_path / 'cat2.db'}"
    _measured(url2)
    with Catalog(url2) as cat:
        # steps whose later image is before --since are history, not news
        (late,) = measured_change_alerts(cat, "base", Rules(), since=date(2020, 6, 1))
        assert cat.get_alert(late).details["after"]["date"] == "2021-05-01"


def test_slow_work_that_no_pair_of_images_shows(tmp_path: Path) -> None:
    """A berm raised a metre a year (each step 1.4 sigma): one alert for the whole change, once,
    not again when it keeps growing."""
    with Catalog(f"sqlite:///{tmp_path / 'cat.db'}") as cat:
        cat.add_site(Site(id="base", name="Base", lon=LON, lat=LAT))
        cat.add_feature(Feature("berm", "base", "berm", Point(LON, LAT), name="north berm"))

        def measure(year: int, height: float) -> None:
            cat.add_observation(Observation(f"o{year}", "base", datetime(year, 5, 1, tzinfo=UTC)))
            cat.add_measurement(Measurement(f"h{year}", "base", "height", height, "m", 0.5,
                                            feature_id="berm", observation_id=f"o{year}"))  # fmt: skip

        for year, height in ((2019, 10.0), (2020, 11.0), (2021, 12.0)):
            measure(year, height)
        (alert_id,) = measured_change_alerts(cat, "base", Rules())
        alert = cat.get_alert(alert_id)
        assert alert.message == (
            "north berm height grew by 2.00 ± 0.71 m between 2019-05-01 and 2021-05-01 over 3 "
            "image dates (10.00 ± 0.50 m -> 12.00 ± 0.50 m)"
        )
        assert alert.details["measurements"] == ["h2019", "h2021"]
        assert measured_change_alerts(cat, "base", Rules()) == []
        measure(2022, 13.0)  # still growing slowly: the quantity has its alert already
        assert measured_change_alerts(cat, "base", Rules()) == []


def test_the_monitor_raises_them_without_new_imagery(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cat.db'}"
    _measured(url)
    (tmp_path / "empty").mkdir()
    opts = MonitorOptions(archive=tmp_path / "a", sources=(str(tmp_path / "empty"),))
    rep = monitor_site(url, "base", opts)
    assert rep.error is None and rep.scenes == 0 and len(rep.alerts) == 2
    off = MonitorOptions(
        archive=tmp_path / "a",
        sources=(str(tmp_path / "empty"),),
        rules=Rules(measured_change=False),
    )
    url2 = f"sqlite:///{tmp_path / 'cat2.db'}"
    _measured(url2)
    assert monitor_site(url2, "base", off).alerts == []
    # no imagery source at all: the measurements are still checked
    url3 = f"sqlite:///{tmp_path / 'cat3.db'}"
    _measured(url3)
    rep = monitor_site(url3, "base", MonitorOptions(archive=tmp_path / "a", imagery=False))
    assert rep.error is None and len(rep.alerts) == 2


def test_cli_delivers_them_to_the_sinks(
    tmp_path: Path, sw: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "alerts.jsonl"
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        f'[rules]\nmeasured_change_sigmas = 2.5\n[[sinks]]\ntype = "jsonl"\npath = "{out}"\n'
    )
    assert (
        sw("sites", "add", "base", "--name", "Base", "--lat", str(LAT), "--lon", str(LON)).code == 0
    )
    berm = sw("features", "add", "base", "--kind", "berm", "--lon", str(LON), "--lat", str(LAT),
              "--name", "north berm", "--json").json()["id"]  # fmt: skip
    for day, value in (("2019-05-01", "12"), ("2021-05-01", "18")):
        obs = sw("observations", "add", "base", "--date", day, "--json").json()["id"]
        r = sw(
            "measure",
            "record",
            "base",
            "--kind",
            "height",
            "--value",
            value,
            "--uncertainty",
            "1",
            "--feature",
            berm,
            "--observation",
            obs,
        )
        assert r.code == 0, r.err
    (tmp_path / "empty").mkdir()
    run = (
        "monitor",
        "run",
        "--site",
        "base",
        "--source",
        str(tmp_path / "empty"),
        "--config",
        str(cfg),
        "--json",
    )
    r = sw(*run)
    assert r.code == 0, r.err
    assert r.json()["alerts"] == 1
    (line,) = out.read_text().splitlines()
    sent = json.loads(line)
    assert sent["rule"] == "measured_change" and sent["site_name"] == "Base"
    assert (
        "north berm height grew by 6.0 ± 1.4 m between 2019-05-01 and 2021-05-01" in sent["message"]
    )
    assert sw(*run).json()["alerts"] == 0
    # analysts who measure on their own imagery: the measurements alone, no scene searched
    r = sw("monitor", "run", "--site", "base", "--no-imagery", "--config", str(cfg), "--json")
    assert r.code == 0 and r.json()["alerts"] == 0 and r.json()["sites"][0]["scenes"] == 0, r.err
    r = sw("monitor", "run", "--site", "base", "--no-imagery", "--source", str(tmp_path))
    assert r.code == 2 and "leave out --source" in r.err
    (listed,) = sw("alerts", "list", "--json").json()
    assert listed["rule"] == "measured_change" and listed["details"]["verdict"] == "grew"
    # the site's page on the terminal shows it until it is dismissed
    shown = sw("sites", "show", "base").out
    assert "open alerts 1" in shown and "alert [warning, new] north berm height grew by" in shown
    assert sw("sites", "show", "base", "--json").json()["alerts"][0]["id"] == listed["id"]
    assert sw("alerts", "list", "--rule", "changed_area", "--json").json() == []
    assert [
        a["id"] for a in sw("alerts", "list", "--rule", "measured_change", "--json").json()
    ] == [listed["id"]]
    # dealt with in bulk: the new alerts of a site and rule
    r = sw("alerts", "dismiss", "--site", "base", "--rule", "measured_change")
    assert r.code == 0 and "1 alert(s) dismissed" in r.out
    assert sw("alerts", "list", "--state", "dismissed", "--json").json()[0]["id"] == listed["id"]
    for args, message in [
        ((), "give the ids of the alerts"),
        ((listed["id"], "--site", "base"), "not both"),
        (("--site", "nowhere"), "no site with id 'nowhere'"),
    ]:
        r = sw("alerts", "ack", *args)
        assert r.code == 2 and message in r.err, (args, r.err)
    assert "open alerts 0" in sw("sites", "show", "base").out


@pytest.mark.parametrize("bad", ["0", "-1", '"two"', "true"])
def test_a_bad_threshold_names_the_file_and_the_fix(tmp_path: Path, bad: str) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(f"[rules]\nmeasured_change_sigmas = {bad}\n")
    with pytest.raises(
        ConfigError,
        match=r"monitor\.toml: \[rules\] measured_change_sigmas must be a number above 0",
    ):
        load_config(cfg)
    cfg.write_text("[rules]\nmeasured_change = false\n")
    assert load_config(cfg).rules.measured_change is False
