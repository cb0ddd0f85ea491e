"""Measured change: image dates, trends (first to last image) and steps (image to image)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sitewatch.catalog.models import Measurement, Observation
from sitewatch.catalog.trends import image_dates, measurement_steps, measurement_trends, verdict


def _records() -> tuple[list[Observation], list[Measurement]]:
    obs = [Observation(f"o{y}", "s", datetime(y, 5, 1, tzinfo=UTC)) for y in (2019, 2020, 2021)]
    portal = {"feature_id": "portal"}
    ms = [
        Measurement("h1", "s", "height", 12.0, "m", 0.6, feature_id="berm", observation_id="o2019"),
        Measurement("h2", "s", "height", 15.0, "m", 0.8, feature_id="berm", observation_id="o2020"),
        Measurement("h3", "s", "height", 18.0, "m", 0.8, feature_id="berm", observation_id="o2021"),
        Measurement("h4", "s", "height", 17.0, "m", 0.8, feature_id="berm", observation_id="o2021"),
        Measurement(
            "w1", "s", "width", 7.0, "m", 1.0, **portal, inputs={"acquired": "2019-05-01T02:00:00Z"}
        ),
        Measurement(
            "w2", "s", "width", 7.5, "m", 1.0, **portal, inputs={"acquired": "2021-05-01T02:00:00Z"}
        ),
        Measurement("v1", "s", "volume", 9000.0, "m3", feature_id="berm", observation_id="o2019"),
        Measurement("v2", "s", "volume", 9900.0, "m3", feature_id="berm", observation_id="o2021"),
        Measurement("d1", "s", "distance", 1.0, "m", feature_id="berm"),  # no image date
        Measurement("l1", "s", "length", 80.0, "m", 5.0, observation_id="o2021"),  # one date
    ]
    return obs, ms


def test_measured_change_between_the_first_and_last_image() -> None:
    """Per feature and quantity: first and last image dates, the difference with the errors in
    quadrature, and a two-sigma verdict; one date only, or no image date, gives no trend."""
    obs, ms = _records()
    assert image_dates(ms, obs)["w1"] == "2019-05-01" and image_dates(ms, obs)["d1"] == ""
    trends = {(t["feature_id"], t["kind"]): t for t in measurement_trends(ms, obs)}
    assert set(trends) == {("berm", "height"), ("portal", "width"), ("berm", "volume")}
    height = trends[("berm", "height")]
    # the last stored of a date counts (h4 corrects h3); three dates
    assert height["first"] == ("2019-05-01", 12.0, 0.6)
    assert height["last"] == ("2021-05-01", 17.0, 0.8)
    assert height["measurements"] == ("h1", "h4")
    assert height["change"] == pytest.approx(5.0) and height["sigma"] == pytest.approx(1.0)
    assert (height["verdict"], height["dates"]) == ("grew", 3)
    assert trends[("portal", "width")]["verdict"] == "no significant change"
    assert trends[("berm", "volume")]["verdict"] == "uncertainty unknown"


def test_measured_change_from_image_to_image() -> None:
    """Steps say when: the berm grew 3 m (3 sigma) from 2019 to 2020, then 2 m (1.8 sigma,
    not significant) to 2021; a stricter threshold drops the first step too."""
    obs, ms = _records()
    steps = [
        s for s in measurement_steps(ms, obs) if (s["feature_id"], s["kind"]) == ("berm", "height")
    ]
    assert [(s["first"][0], s["last"][0], s["measurements"]) for s in steps] == [
        ("2019-05-01", "2020-05-01", ("h1", "h2")),
        ("2020-05-01", "2021-05-01", ("h2", "h4")),
    ]
    assert steps[0]["change"] == pytest.approx(3.0) and steps[0]["sigma"] == pytest.approx(1.0)
    assert [s["verdict"] for s in steps] == ["grew", "no significant change"]
    strict = [s for s in measurement_steps(ms, obs, sigmas=3.5) if s["kind"] == "height"]
    assert [s["verdict"] for s in strict] == ["no significant change"] * 2
    # a quantity on two dates has one step, the same as its trend
    (width,) = [s for s in measurement_steps(ms, obs) if s["kind"] == "width"]
    assert width["change"] == pytest.approx(0.5) and "dates" not in width


@pytest.mark.parametrize(
    ("change", "sigma", "expected"),
    [
        (2.1, 1.0, "grew"),
        (-2.1, 1.0, "shrank"),
        (2.0, 1.0, "no significant change"),
        (0.0, 0.0, "no significant change"),
        (5.0, None, "uncertainty unknown"),
    ],
)
def test_verdict_is_beyond_two_sigma(change: float, sigma: float | None, expected: str) -> None:
    assert verdict(change, sigma) == expected
