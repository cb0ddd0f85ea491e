"""The monitor configuration: alert rules and sinks, from a TOML file.

```toml
[rules]
min_changed_area_m2 = 400      # alert when at least this much changed since the last clear scene
phase_transitions = true       # alert when the activity phase changes
new_feature_candidates = true  # alert when a compact new change blob could be a new feature
min_feature_area_m2 = 50
max_feature_area_m2 = 5000
max_cloud = 0.3                # scenes with more cloud over the site are not "clear"
measured_change = true         # alert when a feature's measured size changed between images
measured_change_sigmas = 2.0   # ... by more than this many of its one-sigma errors

[[sinks]]
type = "jsonl"
path = "~/sitewatch-alerts.jsonl"

[[sinks]]
type = "webhook"
url = "https://hooks.example.org/sitewatch"
secret_env = "SITEWATCH_WEBHOOK_SECRET"
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..config import config_value
from ..errors import ConfigError
from .sinks import AlertSink, LogSink, sink_from_config

__all__ = ["MonitorConfig", "Rules", "load_config"]


@dataclass(frozen=True)
class Rules:
    """When the monitor raises an alert."""

    min_changed_area_m2: float = 400.0
    phase_transitions: bool = True
    new_feature_candidates: bool = True
    min_feature_area_m2: float = 50.0
    max_feature_area_m2: float = 5000.0
    max_cloud: float = 0.3
    measured_change: bool = True
    """Alert when a quantity measured of a feature (a berm's height, a spoil volume, a portal's
    width) changed from one image date to the next beyond ``measured_change_sigmas``, or from
    its first to its last when no single step did (slow work): the measurements the analysts
    stored say the site is being improved (or taken down)."""
    measured_change_sigmas: float = 2.0

    def __post_init__(self) -> None:
        sigmas = self.measured_change_sigmas
        if isinstance(sigmas, bool) or not isinstance(sigmas, int | float) or not sigmas > 0:
            raise ConfigError(
                f"measured_change_sigmas must be a number above 0 (2.0: beyond two sigma), "
                f"not {sigmas!r}"
            )
        # a TOML typo ("400 m", "false" in quotes) must not become a silent wrong rule
        for f in fields(self):
            config_value(
                f.name, getattr(self, f.name), "flag" if f.type in (bool, "bool") else "number"
            )
        if self.max_cloud > 1:
            raise ConfigError(
                f"max_cloud is a share from 0 to 1 (0.3: 30%), not {self.max_cloud!r}"
            )
        if self.min_feature_area_m2 > self.max_feature_area_m2:
            raise ConfigError(
                f"min_feature_area_m2 ({self.min_feature_area_m2:g}) is above max_feature_area_m2 "
                f"({self.max_feature_area_m2:g})"
            )


@dataclass(frozen=True)
class MonitorConfig:
    """Rules and sinks."""

    rules: Rules = field(default_factory=Rules)
    sinks: tuple[AlertSink, ...] = (LogSink(),)


def load_config(path: str | Path | None, *, required: bool = False) -> MonitorConfig:
    """Read the configuration; a missing default file gives the defaults (log sink only), a
    missing file the analyst named (``required``) is an error."""
    if path is None or not Path(path).expanduser().exists():
        if required and path is not None:
            raise ConfigError(
                f"monitor configuration {path} does not exist; give an existing TOML file (the "
                "README's 'Monitoring rules and alert sinks' has an example) or leave --config out"
            )
        return MonitorConfig()
    p = Path(path).expanduser()
    try:
        data: dict[str, Any] = tomllib.loads(p.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from exc
    known = {f.name for f in fields(Rules)}
    raw_rules = data.get("rules", {})
    unknown = sorted(set(raw_rules) - known)
    if unknown:
        raise ConfigError(
            f"{p}: unknown rule(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    try:
        rules = Rules(**raw_rules)
    except TypeError as exc:
        raise ConfigError(f"{p}: bad [rules]: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{p}: [rules] {exc}") from exc
    tables = data.get("sinks", [{"type": "log"}])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{p}: sinks must be [[sinks]] tables, each with a type")
    sinks = []
    for i, table in enumerate(tables, 1):
        try:
            sinks.append(sink_from_config(table))
        except ConfigError as exc:
            raise ConfigError(f"{p}: sink {i} ({table.get('type', 'no type')}): {exc}") from exc
    return MonitorConfig(rules=rules, sinks=tuple(sinks))
