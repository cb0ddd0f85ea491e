// sitewatch browser UI: map + panels, hash routing (#/sites, #/site/ID, #/alerts, #/triage, #/reports).
import L from "leaflet";
import { api, get, post, patch, del, setUnauthorisedHandler } from "./api.js";
import { h, select, toast, fmtDate } from "./dom.js";
import { sitePage } from "./site.js";

const state = { me: null, config: null, map: null, overlay: null, cleanup: [] };
export { state };

const panel = () => document.getElementById("panel");

function initMap() {
  const map = L.map("map", { zoomControl: true, worldCopyJump: true, preferCanvas: false, doubleClickZoom: false });
  map.setView([39.0, 126.5], 6);
  if (state.config.basemap_url) {
    L.tileLayer(state.config.basemap_url, { attribution: state.config.basemap_attribution, maxZoom: 19 }).addTo(map);
  }
  map.createPane("countries").style.zIndex = 150; // under imagery (tiles 200+) and overlays
  fetch("/static/countries.geojson")
    .then((r) => r.json())
    .then((fc) => {
      L.geoJSON(fc, {
        interactive: false,
        pane: "countries",
        style: { color: "#6b7b8c", weight: 1, fillColor: "#eef1e6", fillOpacity: state.config.basemap_url ? 0 : 1 },
      }).addTo(map);
    })
    .catch(() => {});
  L.control.scale({ imperial: false }).addTo(map);
  state.map = map;
  state.overlay = L.layerGroup().addTo(map);
}

// Fit the map to bounds. Leaflet drops a view asked for while a zoom animation runs (the site
// list's own fit when a site is opened just after it loads; the previous candidate's when triage
// decisions come fast), so a fit asked for then waits for the animation's end; the last one wins.
let pendingFit = null;
export function fitView(bounds, options) {
  const map = state.map;
  if (!map._animatingZoom) {
    pendingFit = null;
    map.fitBounds(bounds, options);
    return;
  }
  if (!pendingFit) {
    map.once("zoomend", () => {
      const fit = pendingFit;
      pendingFit = null;
      if (fit) map.fitBounds(...fit);
    });
  }
  pendingFit = [bounds, options];
}

// Each view returns a cleanup function (or nothing); the router runs it before the next view.
export function resetView() {
  pendingFit = null; // a view left before its fit was made does not move the next one's map
  for (const fn of state.cleanup.splice(0)) fn();
  state.overlay.clearLayers();
  state.map.getContainer().classList.remove("crosshair");
  state.map.off("click");
  panel().replaceChildren();
}

// --- login -----------------------------------------------------------------------------------

function loginView() {
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("whoami").textContent = "";
  const user = h("input", { type: "text", id: "login-user", autocomplete: "username", required: true });
  const pass = h("input", { type: "password", id: "login-password", autocomplete: "current-password", required: true });
  const msg = h("p", { class: "muted", id: "login-message" });
  const form = h(
    "form",
    { class: "login", id: "login-form" },
    h("h2", {}, "Log in"),
    h("label", {}, "User", user),
    h("label", {}, "Password", pass),
    h("button", { class: "primary", type: "submit", id: "login-submit" }, "Log in"),
    msg,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      state.me = await post("/api/auth/login", { username: user.value, password: pass.value });
      startSession();
    } catch (err) {
      msg.textContent = err.message;
    }
  });
  panel().replaceChildren(form);
  user.focus();
}

function startSession() {
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  document.getElementById("whoami").textContent = `${state.me.username} (${state.me.role})`;
  if (!location.hash || location.hash === "#/login") location.hash = "#/sites";
  else route();
  refreshAlertCount();
}

export const canWrite = () => state.me && (state.me.role === "analyst" || state.me.role === "admin");

async function refreshAlertCount() {
  try {
    const alerts = await get("/api/alerts?state=new");
    document.getElementById("alert-count").textContent = alerts.length ? String(alerts.length) : "";
  } catch (_) {
    /* not logged in */
  }
}
export { refreshAlertCount };

// Acknowledge (a new alert) and Dismiss (a new or acknowledged one) for an analyst; then
// ``reload`` and the header's count. Used by the inbox and by a site's page.
// An alert's rule, the day it was raised and its state, in words (the inbox and the site page).
export const alertMeta = (a) =>
  `${a.rule.replaceAll("_", " ")} · raised ${fmtDate(a.created_at)} · ${a.state === "acked" ? "acknowledged" : a.state}`;

export function alertButtons(a, reload) {
  if (!canWrite() || a.state === "dismissed") return null;
  const act = (st) => async (ev) => {
    ev.stopPropagation();
    try {
      await post(`/api/alerts/${a.id}/state`, { state: st, version: a.version });
      await reload();
      refreshAlertCount();
    } catch (e) {
      toast(e.message, true);
    }
  };
  return h("div", { class: "row" },
    a.state === "new" ? h("button", { class: "ack", onclick: act("acked") }, "Acknowledge") : null,
    h("button", { class: "dismiss", onclick: act("dismissed") }, "Dismiss"));
}

// --- site list -------------------------------------------------------------------------------

const filters = { q: "", status: "", category: "", tag: "", inView: false };
// the catalog report's colours (sitewatch.report.catalogmap), so that both maps read alike
const STATUS_COLOURS = { suspected: "#ff7f00", confirmed: "#e41a1c", inactive: "#999999", dismantled: "#377eb8" };

// A map legend of the statuses (filled: undeclared, hollow: declared); CSS classes carry the colours.
function statusLegend() {
  const legend = L.control({ position: "bottomright" });
  legend.onAdd = () =>
    h("div", { class: "legend", id: "status-legend" },
      ...Object.keys(STATUS_COLOURS).map((st) => h("div", {}, h("span", { class: `dot status-${st}` }), ` ${st}`)),
      h("div", {}, h("span", { class: "dot hollow" }), " declared"));
  return legend;
}

async function sitesView() {
  const list = h("ul", { class: "list", id: "site-list" });
  const count = h("span", { class: "muted", id: "site-count" });
  const markers = L.featureGroup().addTo(state.overlay);
  let timer = null;
  const reload = async () => {
    const params = new URLSearchParams();
    if (filters.q) params.set("q", filters.q);
    if (filters.status) params.append("status", filters.status);
    if (filters.category) params.append("category", filters.category);
    if (filters.tag) params.append("tag", filters.tag);
    if (filters.inView) {
      const b = state.map.getBounds();
      const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
      params.set("bbox", [clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90), clamp(b.getEast(), -180, 180), clamp(b.getNorth(), -90, 90)].map((v) => v.toFixed(5)).join(","));
    }
    const [sites, fresh] = await Promise.all([get("/api/sites?" + params), get("/api/alerts?state=new")]);
    const newAlerts = {}; // a site's new alerts, the first thing to look at in triage
    for (const a of fresh) newAlerts[a.site_id] = (newAlerts[a.site_id] || 0) + 1;
    count.textContent = `${sites.length} site(s)`;
    markers.clearLayers();
    list.replaceChildren(
      ...sites.map((s) => {
        // coloured by status as in the catalog report; hollow when declared
        const colour = STATUS_COLOURS[s.status] || "#555";
        const look = { radius: 6, color: colour, fillColor: colour, fillOpacity: s.declared ? 0 : 0.8, weight: 2 };
        const m = L.circleMarker([s.lat, s.lon], look).bindTooltip(s.name);
        const row = h(
          "li",
          {
            "data-site": s.id,
            onclick: () => (location.hash = `#/site/${s.id}`),
            // the row and its marker point each other out
            onmouseenter: () => { m.setStyle({ radius: 10, weight: 3 }); m.bringToFront(); m.openTooltip(); },
            onmouseleave: () => { m.setStyle(look); m.closeTooltip(); },
          },
          h("div", {}, h("strong", {}, s.name), " ", h("span", { class: "muted" }, `${s.status}${s.declared ? " · declared" : ""}`),
            newAlerts[s.id] ? [" ", h("span", { class: "badge site-alerts", title: "new alerts" }, String(newAlerts[s.id]))] : null),
          h("div", { class: "muted" }, `${s.category.replaceAll("_", " ")} · ${s.country || "?"} · `, s.tags.map((t) => h("span", { class: "tag" }, t))),
        );
        m.on("click", () => (location.hash = `#/site/${s.id}`));
        m.on("mouseover", () => { row.classList.add("hover"); row.scrollIntoView({ block: "nearest" }); });
        m.on("mouseout", () => row.classList.remove("hover"));
        markers.addLayer(m);
        return row;
      }),
    );
    if (!filters.inView && sites.length) fitView(markers.getBounds().pad(0.3), { maxZoom: 10 });
  };
  const debounce = () => {
    clearTimeout(timer);
    timer = setTimeout(() => reload().catch((e) => toast(e.message, true)), 250);
  };
  const bind = (key) => (ev) => {
    filters[key] = ev.target.type === "checkbox" ? ev.target.checked : ev.target.value;
    debounce();
  };
  const cfg = state.config;
  panel().replaceChildren(
    h("h2", {}, "Sites"),
    h("input", { type: "search", id: "filter-q", placeholder: "search name, alias, notes", value: filters.q, oninput: bind("q") }),
    h(
      "div",
      { class: "row" },
      h("label", {}, "Status", select([["", "any"], ...cfg.statuses], filters.status, { id: "filter-status", onchange: bind("status") })),
      h("label", {}, "Category", select([["", "any"], ...cfg.categories], filters.category, { id: "filter-category", onchange: bind("category") })),
    ),
    h(
      "div",
      { class: "row" },
      h("label", {}, "Tag", h("input", { type: "text", id: "filter-tag", value: filters.tag, oninput: bind("tag") })),
      h("label", {}, h("input", { type: "checkbox", id: "filter-view", checked: filters.inView, onchange: bind("inView") }), " in map view"),
    ),
    count,
    list,
    ...(canWrite() ? [h("button", { id: "new-site", onclick: () => newSite() }, "New site at map centre")] : []),
  );
  const onMove = () => filters.inView && debounce();
  state.map.on("moveend", onMove);
  const legend = statusLegend().addTo(state.map);
  await reload();
  return () => {
    state.map.off("moveend", onMove);
    legend.remove();
  };
}

async function newSite() {
  const name = prompt("Name of the new site");
  if (!name) return;
  const c = state.map.getCenter();
  try {
    const site = await post("/api/sites", { name, lon: +c.lng.toFixed(6), lat: +c.lat.toFixed(6) });
    location.hash = `#/site/${site.id}`;
  } catch (e) {
    toast(e.message, true);
  }
}

// --- alerts ----------------------------------------------------------------------------------

async function alertsView() {
  let which = "new";
  let rule = "";
  const list = h("ul", { class: "list", id: "alert-list" });
  const markers = L.featureGroup().addTo(state.overlay);
  const sites = Object.fromEntries((await get("/api/sites")).map((s) => [s.id, s]));
  const reload = async () => {
    const params = new URLSearchParams();
    if (which) params.set("state", which);
    if (rule) params.set("rule", rule);
    const alerts = await get(`/api/alerts?${params}`);
    markers.clearLayers();
    list.replaceChildren(
      ...alerts.map((a) => {
        const s = sites[a.site_id];
        if (s) markers.addLayer(L.circleMarker([s.lat, s.lon], { radius: 7, color: "#c0392b" }).bindTooltip(a.message));
        return h(
          "li",
          { class: `sev-${a.severity}`, "data-alert": a.id, onclick: () => (location.hash = `#/site/${a.site_id}`) },
          h("div", {}, h("strong", {}, a.message)),
          h("div", { class: "muted" }, `${s ? s.name : a.site_id} · ${alertMeta(a)}`),
          alertButtons(a, reload),
        );
      }),
    );
    if (!alerts.length) list.append(h("li", { class: "muted" }, "No alerts."));
  };
  panel().replaceChildren(
    h("h2", {}, "Alert inbox"),
    select([["new", "new"], ["acked", "acknowledged"], ["dismissed", "dismissed"], ["", "all"]], which, {
      id: "alert-state",
      onchange: (ev) => {
        which = ev.target.value;
        reload();
      },
    }),
    select([["", "every rule"], ["measured_change", "measured change"], ["changed_area", "changed area"],
      ["phase_transition", "phase transition"], ["new_feature_candidate", "new feature candidate"]], rule, {
      id: "alert-rule",
      onchange: (ev) => {
        rule = ev.target.value;
        reload();
      },
    }),
    list,
  );
  await reload();
}

// --- triage ----------------------------------------------------------------------------------

async function triageView() {
  let queue = await get("/api/candidates?state=pending");
  let done = 0;
  const box = h("div", { id: "triage-card", class: "card" });
  const layer = L.featureGroup().addTo(state.overlay);
  const show = () => {
    layer.clearLayers();
    if (!queue.length) {
      box.replaceChildren(h("p", { id: "triage-empty" }, `Queue empty. ${done} decision(s) this session.`));
      return;
    }
    const c = queue[0];
    const shape = L.geoJSON(c.geometry, { style: { color: "#d35400", weight: 3, fillOpacity: 0.1 } }).addTo(layer);
    fitView(shape.getBounds().pad(2), { maxZoom: 18 });
    // the candidate's own image (its tile outlined in red, a tile of context around it): what the
    // decision is made on; a run triaged elsewhere has no image here, and the card says so
    const chip = h("img", { id: "triage-chip", class: "triage-chip", src: `/api/candidates/${encodeURIComponent(c.id)}/chip.png`, alt: `candidate #${c.rank}` });
    const noChip = h("div", { class: "muted", id: "triage-no-chip", hidden: true }, "no image: this run's folder is not on the server");
    chip.addEventListener("error", () => { chip.hidden = true; noChip.hidden = false; });
    const facts = Object.entries(c.details).filter(([k]) => k !== "catalogued_site")
      .map(([k, v]) => h("div", {}, h("span", { class: "muted" }, `${k.replaceAll("_", " ")}: `), typeof v === "object" ? JSON.stringify(v) : String(v)));
    box.replaceChildren(
      h("div", { class: "result", id: "triage-current", "data-candidate": c.id }, `#${c.rank} · score ${c.score.toFixed(3)}`),
      h("div", { class: "muted" }, `run ${c.run_id} · ${queue.length} pending`),
      // a place the catalog holds already: accepting links to that site, not a second one
      // (spread, not a null: replaceChildren would show "null")
      ...(c.details.catalogued_site
        ? [h("div", { id: "triage-catalogued", class: "sev-warning" },
            `${c.details.catalogued_site.distance_m ? `${Math.round(c.details.catalogued_site.distance_m).toLocaleString("en-US")} m from` : "on"} the catalogued site `,
            h("a", { href: `#/site/${c.details.catalogued_site.id}` }, c.details.catalogued_site.name),
            ": accepting links to it")]
        : []),
      chip,
      noChip,
      h("div", { class: "triage-facts" }, ...facts),
    );
  };
  const decide = async (decision) => {
    if (!queue.length || !canWrite()) return;
    const c = queue[0];
    try {
      const res = await post(`/api/candidates/${c.id}/triage`, { decision, version: c.version });
      queue.shift();
      done += 1;
      const linked = res.details.catalogued_site && res.details.catalogued_site.id === res.site_id;
      toast(decision === "accept" ? `accepted: ${linked ? "linked to site" : "new site"} ${res.site_id}` : `${decision}ed #${c.rank}`);
      show();
    } catch (e) {
      toast(e.message, true);
      queue = await get("/api/candidates?state=pending");
      show();
    }
  };
  const onKey = (ev) => {
    if (ev.target.matches("input, textarea, select")) return;
    const d = { a: "accept", r: "reject", s: "skip" }[ev.key];
    if (d) {
      ev.preventDefault();
      decide(d);
    }
  };
  document.addEventListener("keydown", onKey);
  panel().replaceChildren(
    h("h2", {}, "Candidate triage"),
    h("p", { class: "keys muted" }, h("kbd", {}, "a"), " accept (new suspected site) · ", h("kbd", {}, "r"), " reject · ", h("kbd", {}, "s"), " skip"),
    box,
    canWrite()
      ? h("div", { class: "row" }, h("button", { onclick: () => decide("accept") }, "Accept"), h("button", { onclick: () => decide("reject") }, "Reject"), h("button", { onclick: () => decide("skip") }, "Skip"))
      : h("p", { class: "muted" }, "Viewers can look but not decide."),
  );
  show();
  return () => document.removeEventListener("keydown", onKey);
}

// --- reports ---------------------------------------------------------------------------------

async function reportsView(siteId) {
  const scopes = [["all", "all sites"], ["filtered", "sites matching the list filters"]];
  if (siteId) scopes.unshift([`site:${siteId}`, `this site (${siteId})`]);
  const fmt = select(state.config.report_formats, siteId ? "brief" : "geojson", { id: "report-format" });
  const scope = select(scopes, scopes[0][0], { id: "report-scope" });
  const bar = h("progress", { id: "report-progress", max: 1, value: 0 });
  const msg = h("div", { class: "muted", id: "report-message" });
  const link = h("div", { id: "report-link" });
  let source = null;
  const start = async () => {
    link.replaceChildren();
    let siteIds;
    if (scope.value.startsWith("site:")) siteIds = [scope.value.slice(5)];
    else if (fmt.value.startsWith("brief")) return toast("a brief is about one site: open the site and use its report link", true);
    if (scope.value === "filtered") {
      const p = new URLSearchParams();
      if (filters.q) p.set("q", filters.q);
      if (filters.status) p.append("status", filters.status);
      if (filters.category) p.append("category", filters.category);
      if (filters.tag) p.append("tag", filters.tag);
      siteIds = (await get("/api/sites?" + p)).map((s) => s.id);
    }
    try {
      const job = await post("/api/reports", { format: fmt.value, site_ids: siteIds });
      source = new EventSource(`/api/reports/${job.id}/events`);
      const update = (ev) => {
        const j = JSON.parse(ev.data);
        bar.value = j.progress;
        msg.textContent = j.message;
        if (j.state === "done") {
          link.replaceChildren(h("a", { href: j.download, id: "report-download", download: "" }, `Download ${fmt.value}`));
          source.close();
        } else if (j.state === "failed") {
          source.close();
          toast(j.message, true);
        }
      };
      source.addEventListener("progress", update);
      source.addEventListener("done", update);
      source.addEventListener("failed", update);
    } catch (e) {
      toast(e.message, true);
    }
  };
  panel().replaceChildren(
    h("h2", {}, "Reports and exports"),
    h("label", {}, "Format", fmt),
    h("label", {}, "Sites", scope),
    h("button", { class: "primary", id: "report-start", onclick: start }, "Make report"),
    bar,
    msg,
    link,
  );
  return () => source && source.close();
}

// --- router ----------------------------------------------------------------------------------

const VIEWS = { sites: sitesView, alerts: alertsView, triage: triageView, reports: reportsView };

async function route() {
  if (!state.me) return loginView();
  resetView();
  const [, name, arg] = (location.hash || "#/sites").split("/");
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === (name === "site" ? "sites" : name));
  try {
    const id = decodeURIComponent(arg || "");
    const cleanup = name === "site" ? await sitePage(id) : await (VIEWS[name] || sitesView)(id || undefined);
    if (typeof cleanup === "function") state.cleanup.push(cleanup);
  } catch (e) {
    toast(e.message, true);
  }
}

async function main() {
  state.config = await get("/api/config");
  initMap();
  setUnauthorisedHandler(() => {
    state.me = null;
    loginView();
  });
  document.getElementById("logout").addEventListener("click", async () => {
    try {
      await post("/api/auth/logout");
    } catch (_) {
      /* already out */
    }
    state.me = null;
    resetView();
    loginView();
  });
  window.addEventListener("hashchange", route);
  try {
    state.me = await get("/api/auth/me");
    startSession();
  } catch (_) {
    loginView();
  }
}

export { api, patch, del, L };
document.addEventListener("DOMContentLoaded", main);
