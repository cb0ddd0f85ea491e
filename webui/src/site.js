// The site page: edit form, imagery timeline with before/after swipe, change overlays, activity
// plot, features (draw, edit, move vertices), the shadow-height tool, measurements, observations
// with their evidence, the sources the site cites, and history.
import L from "leaflet";
import { get, post, patch, del, upload } from "./api.js";
import { h, svg, select, toast, fmtDate, valueText } from "./dom.js";
import { state, canWrite, fitView, alertButtons, alertMeta, refreshAlertCount } from "./main.js";

const PHASE_COLOUR = {
  no_activity: "#95a5a6",
  site_preparation: "#f1c40f",
  active_construction: "#e67e22",
  post_construction: "#27ae60",
};

// The measured sizes a feature's editor shows (attributes, as the CLI's features add sets them):
// key, label, largest value.
const FEATURE_NUMBERS = [
  ["height_m", "Height (m)", 1000],
  ["width_m", "Width (m)", 100000],
  ["length_m", "Length (m)", 100000],
  ["azimuth_deg", "Azimuth (°)", 360],
];

// The kinds of change a change event records (details.kinds: m² by kind, such as
// vegetation_to_built_or_bare), as " · vegetation → built or bare 92%, within built or bare 8%"
// (as sitewatch.analysis.landcover.kind_text words them for briefs and alerts),
// largest first; "" when the event has none. Stored JSON need not keep the order, so it is made here.
export function changeKinds(change, most = 3) {
  const kinds = (change.details || {}).kinds;
  if (!kinds || typeof kinds !== "object") return "";
  const areas = Object.entries(kinds).filter(([, a]) => typeof a === "number" && a > 0);
  const total = areas.reduce((sum, [, a]) => sum + a, 0);
  if (!total) return "";
  areas.sort((p, q) => q[1] - p[1] || (p[0] < q[0] ? -1 : 1));
  const name = (k) => k.replace("_to_", " → ").replaceAll("_", " ");
  return " · " + areas.slice(0, most).map(([k, a]) => `${name(k)} ${Math.round((100 * a) / total)}%`).join(", ");
}

// An evidence item as a link: a stored file (evidence:<sha256>/<name>) through the API, a web
// address as it is; anything else (an imported string, javascript: and the like) as plain text.
export function evidenceLink(ref) {
  const m = /^evidence:([0-9a-f]{64})\/([^/\\]+)$/.exec(ref);
  if (m) {
    const href = `/api/evidence/${m[1]}/${encodeURIComponent(m[2])}`;
    const image = /\.(png|jpe?g|gif|webp)$/i.test(m[2]);
    return h("a", { href, target: "_blank", rel: "noopener", title: `${m[2]} · SHA-256 ${m[1]}` }, image ? h("img", { class: "evidence-thumb", src: href, alt: m[2], loading: "lazy" }) : m[2]);
  }
  if (/^https?:\/\/\S+$/i.test(ref)) return h("a", { href: ref, target: "_blank", rel: "noopener noreferrer" }, ref);
  return h("span", {}, ref);
}

// What a history entry was about, so that 20 lines of "create measurement" tell themselves apart:
// the measured value, the alert's message, the observation's date and phase, the feature's name,
// the change's dates; for an update, also the fields it changed.
const HISTORY_TEXT = {
  measurement: (r) => (r.kind && typeof r.value === "number" ? `${r.kind} ${valueText(r.value, r.uncertainty, r.unit)}` : ""),
  alert: (r) => r.message || "",
  observation: (r) => [fmtDate(r.acquired), r.phase ? r.phase.replaceAll("_", " ") : "", r.text].filter(Boolean).join(" · "),
  feature: (r) => r.name || (r.kind ? r.kind.replaceAll("_", " ") : "") || r.id || "",
  change_event: (r) => (r.before && r.after ? `${fmtDate(r.before)} → ${fmtDate(r.after)}` : ""),
};
const NOT_FIELDS = new Set(["version", "updated_at", "created_at"]);
function historyText(e) {
  const rec = e.after || e.before || {};
  let text = HISTORY_TEXT[e.entity] ? HISTORY_TEXT[e.entity](rec) : "";
  if (e.action === "update" && e.before && e.after) {
    const changed = Object.keys(e.after).filter((k) => !NOT_FIELDS.has(k) && JSON.stringify(e.before[k]) !== JSON.stringify(e.after[k]));
    if (changed.length) text += `${text ? " · " : ""}changed ${changed.join(", ")}`;
  }
  return text.length > 140 ? `${text.slice(0, 139)}…` : text;
}

export async function sitePage(siteId) {
  const map = state.map;
  const [site0, features0, observations0, changes0, chips, measurements0, sources0] = await Promise.all([
    get(`/api/sites/${encodeURIComponent(siteId)}`),
    get(`/api/sites/${encodeURIComponent(siteId)}/features`),
    get(`/api/sites/${encodeURIComponent(siteId)}/observations`),
    get(`/api/sites/${encodeURIComponent(siteId)}/changes`),
    get(`/api/sites/${encodeURIComponent(siteId)}/imagery`),
    get(`/api/measurements?site_id=${encodeURIComponent(siteId)}`),
    get("/api/sources"),
  ]);
  let site = site0;
  let observations = observations0;
  let sources = sources0;
  let features = features0;
  let measurements = measurements0;
  let changes = changes0;
  const cleanups = [];
  const overlay = state.overlay;

  // --- map layers ---------------------------------------------------------------------------
  if (!map.getPane("before")) {
    map.createPane("before").style.zIndex = 250;
    map.createPane("after").style.zIndex = 260;
  }
  const afterPane = map.getPane("after");
  let beforeLayer = null;
  let afterLayer = null;
  const aoiLayer = L.geoJSON(site.aoi || { type: "Point", coordinates: [site.lon, site.lat] }, {
    style: { color: "#f39c12", weight: 2, fill: false, dashArray: "6 4" },
    pointToLayer: (_f, ll) => L.circleMarker(ll, { radius: 6, color: "#f39c12" }),
    interactive: false,
  }).addTo(overlay);
  const changeFeatures = () => ({ type: "FeatureCollection", features: changes.filter((c) => c.geometry).map((c) => ({ type: "Feature", geometry: c.geometry, properties: c })) });
  const changeLayer = L.geoJSON(
    changeFeatures(),
    { style: { color: "#e74c3c", weight: 2, fillOpacity: 0.35 }, onEachFeature: (f, l) => l.bindTooltip(`${f.properties.method}: ${Math.round(f.properties.area_m2)} m² (${fmtDate(f.properties.before)} → ${fmtDate(f.properties.after)})${changeKinds(f.properties)}`) },
  ).addTo(overlay);
  const featureLayer = L.featureGroup().addTo(overlay);
  const drawLayer = L.featureGroup().addTo(overlay);
  // the AOI fills the map (a 200 m base at zoom 18, where 0.5 m imagery shows its pixels); a site
  // known only as a point opens at zoom 15, about 5 km across
  fitView(aoiLayer.getBounds().pad(0.5), { maxZoom: site.aoi ? 18 : 15 });

  // the map's attribution credits the image shown, as figures do (a screenshot keeps it)
  const credit = (chip) => `Image © ${chip.credit || "provider not recorded"}${chip.datetime ? `, ${fmtDate(chip.datetime)}` : ""}`;
  const tiles = (chip, pane) => L.tileLayer(chip.tiles, { pane, maxZoom: 22, maxNativeZoom: 18, minZoom: 3, bounds: undefined, className: "chip", attribution: credit(chip) });
  let afterIndex = chips.length - 1;
  let beforeIndex = Math.max(0, chips.length - 2);
  let swipeOn = false;
  let swipeFrac = 0.5;
  const applyClip = () => {
    if (!swipeOn) {
      afterPane.style.clip = "";
      return;
    }
    const size = map.getSize();
    const nw = map.containerPointToLayerPoint([0, 0]);
    const se = map.containerPointToLayerPoint(size);
    const x = map.containerPointToLayerPoint([size.x * swipeFrac, 0]).x;
    afterPane.style.clip = `rect(${nw.y}px, ${se.x}px, ${se.y}px, ${x}px)`;
  };
  const showImagery = () => {
    if (afterLayer) afterLayer.remove();
    if (beforeLayer) beforeLayer.remove();
    afterLayer = beforeLayer = null;
    if (!chips.length) return;
    afterLayer = tiles(chips[afterIndex], "after").addTo(map);
    if (swipeOn) beforeLayer = tiles(chips[beforeIndex], "before").addTo(map);
    applyClip();
  };
  map.on("move", applyClip);
  cleanups.push(() => {
    map.off("move", applyClip);
    afterPane.style.clip = "";
    if (afterLayer) afterLayer.remove();
    if (beforeLayer) beforeLayer.remove();
  });

  // --- imagery panel ------------------------------------------------------------------------
  const chipLabel = (i) => (chips[i] ? `${fmtDate(chips[i].datetime)} · ${chips[i].sensor} · ${chips[i].resolution} m` : "");
  const afterLabel = h("span", { id: "timeline-label" }, chipLabel(afterIndex));
  // without a blue band the tiles are a false-colour composite: say which, as figures do
  const colours = h("div", { class: "muted", id: "image-colours" });
  const showColours = () => {
    const text = chips[afterIndex] ? chips[afterIndex].colours || "" : "";
    colours.textContent = text ? text[0].toUpperCase() + text.slice(1) : "";
    colours.hidden = !text;
  };
  showColours();
  const timeline = h("input", {
    type: "range", id: "timeline", min: 0, max: Math.max(0, chips.length - 1), step: 1, value: afterIndex,
    oninput: (ev) => {
      afterIndex = +ev.target.value;
      afterLabel.textContent = chipLabel(afterIndex);
      showColours();
      showImagery();
      drawPlot();
      syncObsDefaults();
    },
  });
  const beforeSelect = select(chips.map((c, i) => [String(i), chipLabel(i)]), String(beforeIndex), {
    id: "swipe-before",
    onchange: (ev) => {
      beforeIndex = +ev.target.value;
      showImagery();
    },
  });
  const swipe = h("input", {
    type: "range", class: "swipe", id: "swipe", min: 0, max: 1, step: 0.01, value: swipeFrac,
    oninput: (ev) => {
      swipeFrac = +ev.target.value;
      applyClip();
    },
  });
  const imageryBox = chips.length
    ? h(
        "div",
        {},
        h("label", {}, "Image ", afterLabel, timeline),
        colours,
        h("label", {}, h("input", { type: "checkbox", id: "swipe-on", onchange: (ev) => { swipeOn = ev.target.checked; showImagery(); } }), " before/after swipe; before:"),
        beforeSelect,
        h("label", {}, "swipe position", swipe),
      )
    : h("p", { class: "muted", id: "no-imagery" }, "No archived imagery for this site (`sitewatch imagery fetch`).");
  const changeCount = h("span", {}, ` change overlays (${changes.length})`);
  const changeToggle = h("label", {}, h("input", { type: "checkbox", id: "show-changes", checked: true, onchange: (ev) => (ev.target.checked ? changeLayer.addTo(overlay) : changeLayer.remove()) }), changeCount);

  // --- change events: each detected change, shown on the map when clicked; one recorded from
  // the wrong images or dates is retracted (the history keeps it)
  const eventList = h("ul", { class: "list", id: "change-events" });
  function renderEvents() {
    eventList.replaceChildren(
      ...changes.map((c) => h("li", { "data-change": c.id, onclick: () => c.geometry && fitView(L.geoJSON(c.geometry).getBounds().pad(1), { maxZoom: 18 }) },
        `${fmtDate(c.before)} → ${fmtDate(c.after)}: ${Math.round(c.area_m2).toLocaleString("en-US")} m² (${c.method})`,
        h("span", { class: "muted" }, changeKinds(c)),
        canWrite() ? h("button", { class: "retract", title: "retract this change event (the history keeps it)", onclick: (ev) => { ev.stopPropagation(); retractEvent(c); } }, "×") : null)),
    );
    if (!changes.length) eventList.append(h("li", { class: "muted" }, "none yet (`sitewatch change detect --site` or the monitor records them)"));
    changeCount.textContent = ` change overlays (${changes.length})`;
  }
  async function retractEvent(c) {
    if (!confirm(`Retract the change of ${fmtDate(c.before)} → ${fmtDate(c.after)}? (The history keeps it.)`)) return;
    try {
      // the monitor's alerts name the event they were raised from: the server dismisses them
      const open = await get(`/api/alerts?site_id=${encodeURIComponent(siteId)}&state=new&state=acked`);
      const raised = open.filter((a) => (a.details || {}).change_event === c.id).length;
      await del(`/api/changes/${encodeURIComponent(c.id)}?version=${c.version}`);
      changes = changes.filter((x) => x.id !== c.id);
      changeLayer.clearLayers();
      changeLayer.addData(changeFeatures());
      renderEvents();
      drawPlot();
      if (raised) {
        renderAlerts();
        refreshAlertCount();
      }
      toast(raised ? `change event retracted; ${raised} open alert(s) raised from it dismissed` : "change event retracted");
    } catch (e) {
      toast(e.message, true);
    }
  }
  renderEvents();

  // --- activity plot ------------------------------------------------------------------------
  const plot = svg("svg", { class: "plot", id: "activity-plot", viewBox: "0 0 360 120", preserveAspectRatio: "none" });
  function drawPlot() {
    plot.replaceChildren();
    const dates = [
      ...observations.map((o) => Date.parse(o.acquired)),
      ...changes.map((c) => Date.parse(c.after)),
      ...chips.map((c) => Date.parse(c.datetime)),
    ];
    if (!dates.length) {
      plot.append(svg("text", { x: 10, y: 60 }, "no observations, changes or imagery yet"));
      return;
    }
    let t0 = Math.min(...dates);
    let t1 = Math.max(...dates);
    if (t1 - t0 < 864e5) { t0 -= 864e5 * 15; t1 += 864e5 * 15; }
    const x = (t) => 20 + ((t - t0) / (t1 - t0)) * 330;
    const maxArea = Math.max(1, ...changes.map((c) => c.area_m2));
    plot.append(svg("line", { x1: 20, x2: 350, y1: 95, y2: 95, stroke: "#99a" }));
    for (const c of changes) {
      const hgt = (c.area_m2 / maxArea) * 70;
      plot.append(svg("rect", { x: x(Date.parse(c.after)) - 3, y: 95 - hgt, width: 6, height: hgt, fill: "#e74c3c" }, svg("title", {}, `${fmtDate(c.after)}: ${Math.round(c.area_m2)} m² changed${changeKinds(c)}`)));
    }
    for (const o of observations) {
      plot.append(svg("circle", { cx: x(Date.parse(o.acquired)), cy: 105, r: 4, fill: PHASE_COLOUR[o.phase] || "#2f6db5" }, svg("title", {}, `${fmtDate(o.acquired)}: ${o.phase || "observation"} ${o.text || ""}`)));
    }
    chips.forEach((c, i) => {
      plot.append(svg("line", { x1: x(Date.parse(c.datetime)), x2: x(Date.parse(c.datetime)), y1: 112, y2: 118, stroke: i === afterIndex ? "#000" : "#889", "stroke-width": i === afterIndex ? 2 : 1 }));
    });
    plot.append(svg("text", { x: 20, y: 12 }, `change area (max ${Math.round(maxArea).toLocaleString("en-US")} m²) · observations by phase · images`));
    plot.append(svg("text", { x: 20, y: 92 - 70 }, fmtDate(new Date(t0).toISOString())));
    plot.append(svg("text", { x: 300, y: 92 - 70 }, fmtDate(new Date(t1).toISOString())));
  }
  drawPlot();

  // --- site form ----------------------------------------------------------------------------
  const ro = !canWrite();
  const f = {
    name: h("input", { type: "text", id: "site-name", value: site.name, disabled: ro }),
    status: select(state.config.statuses, site.status, { id: "site-status", disabled: ro }),
    category: select(state.config.categories, site.category, { id: "site-category", disabled: ro }),
    tags: h("input", { type: "text", id: "site-tags", value: site.tags.join(", "), disabled: ro }),
    notes: h("textarea", { id: "site-notes", disabled: ro }, site.notes),
  };
  const versionNote = h("span", { class: "muted", id: "site-version" }, `version ${site.version}`);
  const saveSite = async () => {
    try {
      site = await patch(`/api/sites/${site.id}`, {
        version: site.version,
        name: f.name.value,
        status: f.status.value,
        category: f.category.value,
        tags: f.tags.value.split(",").map((t) => t.trim()).filter(Boolean),
        notes: f.notes.value,
      });
      versionNote.textContent = `version ${site.version}`;
      toast("site saved");
      loadHistory();
    } catch (e) {
      toast(e.status === 409 ? `${e.message}` : e.message, true);
    }
  };

  // --- features -----------------------------------------------------------------------------
  const featureList = h("ul", { class: "list", id: "feature-list" });
  let selected = null;
  let vertexMarkers = [];
  const clearVertices = () => {
    vertexMarkers.forEach((m) => m.remove());
    vertexMarkers = [];
  };
  const renderFeatures = () => {
    featureLayer.clearLayers();
    clearVertices();
    featureList.replaceChildren();
    for (const ft of features) {
      const layer = L.geoJSON(ft.geometry, {
        style: { color: ft.id === selected ? "#d35400" : "#8e44ad", weight: 2, fillOpacity: 0.15 },
        pointToLayer: (_g, ll) => L.circleMarker(ll, { radius: 6, color: ft.id === selected ? "#d35400" : "#8e44ad" }),
      }).bindTooltip(`${ft.kind} ${ft.name}`);
      layer.on("click", () => selectFeature(ft.id));
      featureLayer.addLayer(layer);
      const sizes = FEATURE_NUMBERS.filter(([key]) => typeof ft.attributes[key] === "number").map(([key, label]) => `${label.split(" ")[0].toLowerCase()} ${+ft.attributes[key].toPrecision(4)}${key === "azimuth_deg" ? "°" : " m"}`);
      featureList.append(h("li", { class: ft.id === selected ? "sel" : "", "data-feature": ft.id, onclick: () => selectFeature(ft.id) }, `${ft.kind.replaceAll("_", " ")} ${ft.name}`, h("span", { class: "muted" }, ` ${[ft.geometry.type, ...sizes].join(" · ")}`)));
    }
    renderEditor();
  };
  const editor = h("div", { id: "feature-editor" });
  const selectFeature = (id) => {
    selected = selected === id ? null : id;
    renderFeatures();
  };
  const ringOf = (g) => (g.type === "Polygon" ? g.coordinates[0] : g.type === "LineString" ? g.coordinates : [g.coordinates]);
  function renderEditor() {
    editor.replaceChildren();
    const ft = features.find((x) => x.id === selected);
    if (!ft) return;
    const geom = JSON.parse(JSON.stringify(ft.geometry));
    let moved = false;
    if (canWrite() && ["Point", "Polygon", "LineString"].includes(geom.type)) {
      const ring = ringOf(geom);
      const n = geom.type === "Polygon" ? ring.length - 1 : ring.length;
      for (let i = 0; i < n; i++) {
        const m = L.marker([ring[i][1], ring[i][0]], { draggable: true, icon: L.divIcon({ className: "vertex", iconSize: [10, 10] }) }).addTo(overlay);
        m.on("dragend", () => {
          const p = m.getLatLng();
          ring[i] = [+p.lng.toFixed(7), +p.lat.toFixed(7)];
          if (geom.type === "Polygon" && i === 0) ring[ring.length - 1] = ring[0];
          if (geom.type === "Point") geom.coordinates = ring[0];
          moved = true;
        });
        vertexMarkers.push(m);
      }
    }
    const kind = select(state.config.feature_kinds, ft.kind, { id: "feature-kind", disabled: !canWrite() });
    const name = h("input", { type: "text", id: "feature-name", value: ft.name, disabled: !canWrite() });
    const numbers = Object.fromEntries(
      FEATURE_NUMBERS.map(([key, , max]) => [key, h("input", { type: "number", id: `feature-${key}`, min: 0, max, step: "any", value: ft.attributes[key] ?? "", disabled: !canWrite() })]),
    );
    const seen = Object.fromEntries(
      ["first_seen", "last_seen"].map((key) => [key, h("input", { type: "date", id: `feature-${key}`, value: ft[key] || "", disabled: !canWrite() })]),
    );
    const save = async () => {
      try {
        const attributes = { ...ft.attributes };
        for (const [key, input] of Object.entries(numbers)) {
          if (input.value === "") delete attributes[key];
          else if (!Number.isFinite(+input.value) || +input.value < 0) return toast(`${key.replace("_", " ")} must be a number ≥ 0`, true);
          else attributes[key] = +input.value;
        }
        const body = { version: ft.version, kind: kind.value, name: name.value, attributes, first_seen: seen.first_seen.value || null, last_seen: seen.last_seen.value || null };
        if (moved) body.geometry = geom;
        const upd = await patch(`/api/features/${ft.id}`, body);
        features = features.map((x) => (x.id === ft.id ? upd : x));
        toast("feature saved");
        renderFeatures();
      } catch (e) {
        toast(e.message, true);
      }
    };
    const remove = async () => {
      if (!confirm(`Delete this ${ft.kind}?`)) return;
      const held = measurements.filter((m) => m.feature_id === ft.id);
      const choice = measurementsChoice(held, ft.kind);
      try {
        await del(`/api/features/${ft.id}?version=${ft.version}${choice}`);
        if (held.length) {
          measurements = await get(`/api/measurements?site_id=${encodeURIComponent(siteId)}`);
          renderMeasurements();
        }
        features = features.filter((x) => x.id !== ft.id);
        selected = null;
        renderFeatures();
      } catch (e) {
        toast(e.message, true);
      }
    };
    // sizes: geodesic area and perimeter (length of a line), a berm's volume from its height
    const sizeOut = h("div", { id: "feature-size", class: "muted" });
    const crest = h("input", { type: "number", id: "feature-crest", min: 0, step: "any", placeholder: "0" });
    const measureSize = async (save) => {
      try {
        const body = { feature_id: ft.id, crest_width_m: +crest.value || 0, save };
        const r = await post("/api/tools/feature-size", body);
        const q = (x, unit) => `${Math.round(x.value).toLocaleString()}${x.uncertainty ? ` ± ${Math.round(x.uncertainty).toLocaleString()}` : ""} ${unit}`;
        sizeOut.replaceChildren(
          [r.area && `area ${q(r.area, "m²")}`, r.length && `${r.area ? "perimeter" : "length"} ${q(r.length, "m")}`,
            r.volume ? `volume ${q(r.volume, "m³")} (height from ${r.height_from})` : r.area ? "no volume: give the feature a height (height field, or a shadow measurement)" : null]
            .filter(Boolean).join(" · "),
        );
        if (save) {
          measurements = [...measurements, ...r.measurements];
          renderMeasurements();
          toast(`${r.measurements.length} measurement(s) saved`);
        }
      } catch (e) {
        toast(e.message, true);
      }
    };
    const sizeTools = ft.geometry.type === "Point" ? null : h("div", { class: "row" },
      h("label", {}, "Crest width (m)", crest),
      h("button", { id: "feature-measure", onclick: () => measureSize(false) }, "Measure"),
      canWrite() ? h("button", { id: "feature-measure-save", onclick: () => measureSize(true) }, "Save sizes") : null);
    editor.append(
      h("div", { class: "card" },
        h("div", { class: "muted" }, "Drag the orange vertices to move them, then save."),
        h("label", {}, "Kind", kind),
        h("label", {}, "Name", name),
        h("div", { class: "row" }, ...FEATURE_NUMBERS.map(([key, label]) => h("label", {}, label, numbers[key]))),
        h("div", { class: "row" }, h("label", {}, "First seen", seen.first_seen), h("label", {}, "Last seen", seen.last_seen)),
        canWrite() ? h("div", { class: "row" }, h("button", { class: "primary", id: "feature-save", onclick: save }, "Save feature"), h("button", { id: "feature-delete", onclick: remove }, "Delete")) : null,
        sizeTools,
        sizeOut,
      ),
    );
  }

  // drawing: click to add vertices; "Finish" (or double-click) completes a polygon
  let tool = null; // "point" | "polygon" | "shadow" | "ruler"
  let drawPts = [];
  const drawKind = select(state.config.feature_kinds, "building", { id: "draw-kind" });
  const toolButtons = {};
  const setTool = (t) => {
    tool = tool === t ? null : t;
    drawPts = [];
    drawLayer.clearLayers();
    for (const [k, b] of Object.entries(toolButtons)) b.classList.toggle("on", k === tool);
    map.getContainer().classList.toggle("crosshair", !!tool);
    shadowOut.replaceChildren(tool === "shadow" ? h("span", { class: "muted" }, "Click the base of the object, then the tip of its shadow.") : "");
    rulerOut.replaceChildren(tool === "ruler" ? h("span", { class: "muted" }, "Click points along the path; click the tool again to start afresh.") : "");
  };
  const saveDrawn = async (geometry) => {
    try {
      const ft = await post(`/api/sites/${site.id}/features`, { kind: drawKind.value, geometry });
      features = [...features, ft];
      selected = ft.id;
      setTool(null);
      renderFeatures();
      toast(`${ft.kind} added`);
    } catch (e) {
      toast(e.message, true);
    }
  };
  const finishPolygon = () => {
    if (drawPts.length < 3) return toast("a polygon needs at least three points", true);
    const ring = [...drawPts, drawPts[0]].map((p) => [+p.lng.toFixed(7), +p.lat.toFixed(7)]);
    saveDrawn({ type: "Polygon", coordinates: [ring] });
  };

  // shadow-height tool
  const shadowOut = h("div", { id: "shadow-result" });
  const chipNow = () => chips[afterIndex];
  const obsFor = (chip) => chip && observations.find((o) => (o.scene_id && o.scene_id === chip.scene) || fmtDate(o.acquired) === fmtDate(chip.datetime));
  const measureShadow = async (base, tip, save) => {
    const chip = chipNow();
    const obs = obsFor(chip);
    const body = {
      site_id: site.id,
      base: [base.lng, base.lat],
      tip: [tip.lng, tip.lat],
      save,
      feature_id: selected || undefined,
    };
    if (obs) body.observation_id = obs.id;
    else if (chip) body.acquired = chip.datetime;
    else if (observations.length) body.observation_id = observations[observations.length - 1].id;
    if (chip) body.gsd_m = chip.resolution || undefined;
    const res = await post("/api/tools/shadow-height", body);
    return res;
  };
  // the ruler: the geodesic length through the clicked points, kept as a distance, length or
  // width (of the selected feature) by an analyst
  const rulerOut = h("div", { id: "ruler-result" });
  const rulerKind = select([["distance", "distance"], ["length", "length"], ["width", "width"]], "distance", { id: "ruler-kind" });
  const measureRuler = async (pts, save) => {
    const chip = chipNow();
    const obs = obsFor(chip);
    const body = { site_id: site.id, points: pts.map((p) => [p.lng, p.lat]), save, kind: rulerKind.value, feature_id: (save && selected) || undefined };
    if (obs) body.observation_id = obs.id;
    else if (chip) body.acquired = chip.datetime;
    if (chip && chip.resolution) body.gsd_m = chip.resolution;
    return post("/api/tools/distance", body);
  };
  const showRuler = async (pts) => {
    try {
      const res = await measureRuler(pts, false);
      const of = selected ? features.find((f) => f.id === selected) : null;
      rulerOut.replaceChildren(
        h("div", { class: "result", id: "ruler-length" }, valueText(res.length_m, res.uncertainty_m, "m")),
        h("div", { class: "muted" }, `${res.segments_m.length} segment(s) · first at ${res.azimuth_deg.toFixed(1)}° · ${res.method}`),
        ...(canWrite()
          ? [h("div", { class: "row" }, rulerKind, h("button", {
              class: "primary", id: "ruler-save",
              onclick: async () => {
                try {
                  const saved = await measureRuler(pts, true);
                  measurements = [...measurements, saved.measurement];
                  renderMeasurements();
                  toast(`${saved.measurement.kind} saved${of ? ` on ${of.name || of.kind}` : ""}`);
                } catch (e) {
                  toast(e.message, true);
                }
              },
            }, of ? `Save on ${of.name || of.kind}` : "Save on the site"))]
          : []),
      );
    } catch (e) {
      rulerOut.replaceChildren(h("div", { class: "muted" }, e.message));
    }
  };
  const onMapClick = async (ev) => {
    if (!tool) return;
    if (tool === "point") return saveDrawn({ type: "Point", coordinates: [+ev.latlng.lng.toFixed(7), +ev.latlng.lat.toFixed(7)] });
    drawPts.push(ev.latlng);
    drawLayer.clearLayers();
    L.polyline(drawPts, { color: tool === "polygon" ? "#d35400" : "#16a085", dashArray: tool === "polygon" ? null : "4 3" }).addTo(drawLayer);
    drawPts.forEach((p) => L.circleMarker(p, { radius: 4, color: "#d35400" }).addTo(drawLayer));
    if (tool === "ruler" && drawPts.length >= 2) return showRuler([...drawPts]);
    if (tool === "shadow" && drawPts.length === 2) {
      const [base, tip] = drawPts;
      try {
        const res = await measureShadow(base, tip, false);
        shadowOut.replaceChildren(
          h("div", { class: "result", id: "shadow-height" }, `${res.height_m.toFixed(1)} ± ${res.uncertainty_m.toFixed(1)} m`),
          h("div", { class: "muted" }, `shadow ${res.shadow_length_m.toFixed(1)} m · sun elevation ${res.sun_elevation_deg.toFixed(1)}° (${res.sun_source}) · ${res.method}`),
          canWrite()
            ? h("button", {
                class: "primary", id: "shadow-save",
                onclick: async () => {
                  try {
                    const saved = await measureShadow(base, tip, true);
                    measurements = [...measurements, saved.measurement];
                    renderMeasurements();
                    toast("measurement saved");
                  } catch (e) {
                    toast(e.message, true);
                  }
                },
              }, "Save measurement")
            : null,
        );
      } catch (e) {
        shadowOut.replaceChildren(h("div", { class: "muted" }, e.message));
      }
      drawPts = [];
    }
  };
  map.on("click", onMapClick);
  const onDbl = () => tool === "polygon" && finishPolygon();
  map.on("dblclick", onDbl);
  cleanups.push(() => {
    map.off("click", onMapClick);
    map.off("dblclick", onDbl);
    clearVertices();
  });

  // --- terrain: where the site and its features sit, from the server's DEM (SITEWATCH_WEB_DEM) --
  const terrainBox = h("div", { id: "terrain", class: "muted" }, "reading the DEM…");
  get(`/api/sites/${encodeURIComponent(site.id)}/landform`)
    .then((t) => terrainBox.replaceChildren(
      h("ul", { class: "terrain-lines" }, ...t.lines.map((line) => h("li", {}, line))),
      ...(t.features.length ? [h("div", {}, "features:"), h("ul", { class: "terrain-lines" }, ...t.features.map((line) => h("li", {}, line)))] : []),
      h("div", { class: "muted" }, `from ${t.dem} (${t.cell_m} m cells)`),
    ))
    .catch((e) => (terrainBox.textContent = e.message));

  // --- range rings of the missile classes around the site (the table in use, with sources) --
  const ringLayer = L.featureGroup();
  const ringClasses = h("select", { id: "ring-classes", multiple: true, size: 4, title: "none chosen: every class" });
  const ringToggle = h("input", { type: "checkbox", id: "show-rings" });
  const ringInfo = h("div", { class: "muted", id: "ring-info" });
  // the classes the site's tags name (srbm: every SRBM class; nodong: that class) come chosen
  const tagged = (c) => site.tags.some((t) => [c.id.toLowerCase(), c.type.toLowerCase()].includes(t.trim().toLowerCase()));
  get("/api/ranges/classes")
    .then((classes) => ringClasses.replaceChildren(...classes.map((c) =>
      h("option", { value: c.id, selected: tagged(c), title: `${c.source}${c.notes ? ` · ${c.notes}` : ""}` },
        `${c.name} · ${c.max_range_km.toLocaleString("en-US")} km`))))
    .catch((e) => toast(e.message, true));
  let ringsAsked = 0;
  async function drawRings() {
    const asked = ++ringsAsked;
    ringLayer.clearLayers();
    ringInfo.textContent = "";
    if (!ringToggle.checked) return ringLayer.remove();
    const q = [...ringClasses.selectedOptions].map((o) => `classes=${encodeURIComponent(o.value)}`).join("&");
    try {
      const fc = await get(`/api/sites/${encodeURIComponent(siteId)}/range-rings${q ? `?${q}` : ""}`);
      if (asked !== ringsAsked) return; // a newer choice is on its way
      const rings = fc.features.filter((f) => f.properties.role !== "origin");
      L.geoJSON({ type: "FeatureCollection", features: rings }, {
        style: { color: "#8e44ad", weight: 1.5, dashArray: "6 4", fillOpacity: 0.03 },
        onEachFeature: (f, layer) => layer.bindTooltip(
          `${f.properties.name}: ${f.properties.max_range_km.toLocaleString("en-US")} km (${f.properties.source})`, { sticky: true }),
      }).addTo(ringLayer);
      ringLayer.addTo(overlay);
      ringInfo.textContent = rings.map((f) => `${f.properties.name} ${f.properties.max_range_km.toLocaleString("en-US")} km`).join(" · ");
    } catch (e) {
      toast(e.message, true);
    }
  }
  ringToggle.addEventListener("change", drawRings);
  ringClasses.addEventListener("change", () => ringToggle.checked && drawRings());
  cleanups.push(() => ringLayer.remove());

  // --- the site's open alerts (new and acknowledged), to act on where they are read ---------
  const alertList = h("ul", { class: "list", id: "site-alerts" });
  async function renderAlerts() {
    let alerts = [];
    try {
      alerts = await get(`/api/alerts?site_id=${encodeURIComponent(siteId)}&state=new&state=acked`);
    } catch (e) {
      toast(e.message, true);
    }
    alertList.replaceChildren(
      ...alerts.map((a) =>
        h("li", { class: `sev-${a.severity}`, "data-alert": a.id },
          h("div", {}, a.message),
          h("div", { class: "muted" }, alertMeta(a)),
          alertButtons(a, renderAlerts)),
      ),
    );
    if (!alerts.length) alertList.append(h("li", { class: "muted" }, "no open alerts"));
  }
  renderAlerts();

  // --- measurements and history -------------------------------------------------------------
  const measurementList = h("ul", { class: "list", id: "measurement-list" });
  function renderMeasurements() {
    measurementList.replaceChildren(
      ...measurements.map((m) => {
        const of = m.feature_id ? features.find((f) => f.id === m.feature_id) : null;
        // the date of the image it was read from: its observation's, or the one its inputs name
        const obs = m.observation_id ? observations.find((o) => o.id === m.observation_id) : null;
        const imaged = obs ? fmtDate(obs.acquired) : fmtDate(m.inputs && m.inputs.acquired);
        return h("li", { "data-measurement": m.id }, `${m.kind} ${valueText(m.value, m.uncertainty, m.unit)}`,
          of ? ` of ${of.name || of.kind}` : "",
          imaged ? ` (image ${imaged})` : "",
          h("span", { class: "muted" }, ` · ${m.method} · ${m.analyst} · measured ${fmtDate(m.measured_at)}`),
          canWrite() ? h("button", { class: "retract", title: "retract this measurement (the history keeps it)", onclick: () => retractMeasurement(m) }, "×") : null);
      }),
    );
    if (!measurements.length) measurementList.append(h("li", { class: "muted" }, "none yet"));
    renderChange();
  }
  // how each quantity changed between its first and last image (the server's one rule): is the
  // site still being improved?
  const changeList = h("ul", { class: "list", id: "measured-change" });
  let changeAsked = 0;
  async function renderChange() {
    const asked = ++changeAsked;
    let trends;
    try {
      trends = await get(`/api/sites/${encodeURIComponent(siteId)}/measured-change`);
    } catch (e) {
      trends = [];
      toast(e.message, true);
    }
    if (asked !== changeAsked) return; // a newer request is on its way
    changeList.replaceChildren(
      ...trends.map((t) => {
        const of = t.feature_id ? features.find((f) => f.id === t.feature_id) : null;
        const [d0, v0, u0] = t.first;
        const [d1, v1, u1] = t.last;
        const sign = t.change > 0 ? "+" : "";
        const moved = t.verdict === "grew" || t.verdict === "shrank";
        return h("li", { "data-trend": `${t.feature_id || ""}/${t.kind}`, class: moved ? "sev-warning" : null },
          `${of ? of.name || of.kind : t.feature_id || "site"} ${t.kind}: ${valueText(v0, u0, t.unit)} → ${valueText(v1, u1, t.unit)}, `,
          h("b", {}, `${sign}${valueText(t.change, t.sigma, t.unit)} ${t.verdict}`),
          h("span", { class: "muted" }, ` · ${d0} → ${d1}, ${t.dates} image dates`));
      }),
    );
    if (!trends.length) changeList.append(h("li", { class: "muted" }, "nothing measured on two image dates yet"));
  }
  renderMeasurements();
  async function retractMeasurement(m) {
    if (!confirm(`Retract the ${m.kind} ${m.value} ${m.unit}? (The history keeps it.)`)) return;
    try {
      await del(`/api/measurements/${m.id}?version=${m.version}`);
      measurements = measurements.filter((x) => x.id !== m.id);
      renderMeasurements();
      toast("measurement retracted");
    } catch (e) {
      toast(e.message, true);
    }
  }
  // its measurements are never dropped or unlinked silently: the analyst chooses
  function measurementsChoice(held, what) {
    if (!held.length) return "";
    const drop = confirm(
      `This ${what} has ${held.length} measurement(s) (${[...new Set(held.map((m) => m.kind))].join(", ")}).\n` +
        "OK: delete them with it. Cancel: keep them on the site.",
    );
    return `&measurements=${drop ? "delete" : "keep"}`;
  }
  async function retractObservation(o) {
    if (!confirm(`Retract the observation of ${fmtDate(o.acquired)}? (The history keeps it.)`)) return;
    const held = measurements.filter((m) => m.observation_id === o.id);
    const choice = measurementsChoice(held, "observation");
    try {
      await del(`/api/observations/${o.id}?version=${o.version}${choice}`);
      observations = observations.filter((x) => x.id !== o.id);
      renderObservations();
      if (held.length) {
        measurements = await get(`/api/measurements?site_id=${encodeURIComponent(siteId)}`);
        renderMeasurements();
      }
      toast("observation retracted");
    } catch (e) {
      toast(e.message, true);
    }
  }
  // --- observations with their evidence -----------------------------------------------------
  const observationList = h("ul", { class: "list", id: "observation-list" });
  function renderObservations() {
    observationList.replaceChildren(
      ...[...observations].reverse().map((o) =>
        h("li", { "data-observation": o.id, title: chips.length ? "show the image nearest this date" : null, onclick: (ev) => ev.target.closest("a") || showNearest(o.acquired) },
          h("strong", {}, fmtDate(o.acquired)), " ", (o.phase || "").replaceAll("_", " "), " ", h("span", { class: "obs-text" }, o.text),
          h("span", { class: "muted" }, ` · ${[o.sensor, o.analyst].filter(Boolean).join(" · ")}`),
          canWrite() ? h("button", { class: "retract", title: "retract this observation (the history keeps it)", onclick: (ev) => { ev.stopPropagation(); retractObservation(o); } }, "×") : null,
          canWrite() ? h("button", { class: "retract obs-edit", title: "correct this observation (the history keeps what it said)", onclick: (ev) => { ev.stopPropagation(); editObservation(o); } }, "✎") : null,
          o.evidence.length ? h("div", { class: "evidence" }, ...o.evidence.flatMap((e, i) => [i ? " · " : "", evidenceLink(e)])) : null,
        ),
      ),
    );
    if (!observations.length) observationList.append(h("li", { class: "muted" }, "none yet"));
  }
  renderObservations();
  // an observation clicked shows the archived image nearest its date
  function showNearest(iso) {
    if (!chips.length) return;
    const t = Date.parse(iso);
    let best = 0;
    chips.forEach((c, i) => {
      if (Math.abs(Date.parse(c.datetime) - t) < Math.abs(Date.parse(chips[best].datetime) - t)) best = i;
    });
    afterIndex = best;
    timeline.value = String(best);
    afterLabel.textContent = chipLabel(best);
    showImagery();
    drawPlot();
    syncObsDefaults();
  }
  // A new observation is of the image shown: its date and sensor by default, and on saving its
  // exact acquisition time, so that the observation lines up with that image's sun and the heights
  // measured on it. Defaults follow the timeline while the analyst has not typed over them.
  function obsDefaults() {
    const c = chips[afterIndex];
    return { date: c ? fmtDate(c.datetime) : new Date().toISOString().slice(0, 10), sensor: c ? c.sensor || "" : "" };
  }
  let obsShown = obsDefaults();
  function syncObsDefaults() {
    if (editingObs) return;
    const next = obsDefaults();
    if (obsForm.date.value === obsShown.date) obsForm.date.value = next.date;
    if (obsForm.sensor.value === obsShown.sensor) obsForm.sensor.value = next.sensor;
    obsShown = next;
  }
  const obsForm = {
    date: h("input", { type: "date", id: "obs-date", value: obsShown.date }),
    phase: select([["", "(no phase)"], ...state.config.phases.map((p) => [p, p.replaceAll("_", " ")])], "", { id: "obs-phase" }),
    sensor: h("input", { type: "text", id: "obs-sensor", placeholder: "sensor, e.g. WorldView-3", value: obsShown.sensor }),
    text: h("textarea", { id: "obs-text", placeholder: "what was seen" }),
    files: h("input", { type: "file", id: "obs-files", multiple: true }),
    url: h("input", { type: "url", id: "obs-url", placeholder: "or a web address (https://...)" }),
  };
  // an observation being corrected (the form then saves a correction instead of a new one);
  // its evidence is listed with a box each: unticked items are removed by the correction
  let editingObs = null;
  const obsKeep = h("div", { id: "obs-keep", class: "evidence", hidden: true });
  const obsAddButton = h("button", { class: "primary", id: "obs-add", onclick: (ev) => addObservation(ev) }, "Add observation");
  // hidden, not an inline style: the page's Content-Security-Policy blocks style attributes
  const obsCancel = h("button", { id: "obs-cancel", hidden: true, onclick: () => editObservation(null) }, "Cancel");
  function editObservation(o) {
    editingObs = o;
    obsShown = obsDefaults();
    obsForm.date.value = o ? fmtDate(o.acquired) : obsShown.date;
    obsForm.phase.value = o ? o.phase || "" : "";
    obsForm.sensor.value = o ? o.sensor : obsShown.sensor;
    obsForm.text.value = o ? o.text : "";
    for (const k of ["files", "url"]) obsForm[k].value = "";
    const held = o ? o.evidence : [];
    obsKeep.replaceChildren(
      ...(held.length ? [h("div", { class: "muted" }, "Evidence kept (untick to remove):")] : []),
      ...held.map((ref) => h("label", {}, h("input", { type: "checkbox", checked: true, "data-ref": ref }), " ", evidenceLink(ref))),
    );
    obsKeep.hidden = !held.length;
    obsAddButton.textContent = o ? `Save correction of ${fmtDate(o.acquired)}` : "Add observation";
    obsCancel.hidden = !o;
    if (o) obsForm.date.focus();
  }
  const addObservation = async (ev) => {
    const button = ev.target;
    if (!obsForm.date.value) return toast("give the acquisition date", true);
    button.disabled = true;
    try {
      const evidence = [];
      for (const file of obsForm.files.files) evidence.push((await upload(file)).reference);
      if (obsForm.url.value.trim()) evidence.push(obsForm.url.value.trim());
      const fields = {
        phase: obsForm.phase.value || null,
        sensor: obsForm.sensor.value.trim(),
        text: obsForm.text.value.trim(),
      };
      let obs;
      if (editingObs) {
        // the same day keeps the recorded time of day; another day is that day at 00:00 UTC
        const sameDay = fmtDate(editingObs.acquired) === obsForm.date.value;
        obs = await patch(`/api/observations/${editingObs.id}`, {
          version: editingObs.version,
          acquired: sameDay ? editingObs.acquired : `${obsForm.date.value}T00:00:00Z`,
          evidence: [...[...obsKeep.querySelectorAll("input[data-ref]")].filter((c) => c.checked).map((c) => c.dataset.ref), ...evidence],
          ...fields,
        });
        observations = observations.map((x) => (x.id === obs.id ? obs : x));
      } else {
        const shown = chips[afterIndex];
        const acquired = shown && fmtDate(shown.datetime) === obsForm.date.value ? shown.datetime : `${obsForm.date.value}T00:00:00Z`;
        obs = await post(`/api/sites/${site.id}/observations`, { acquired, evidence, ...fields });
        observations = [...observations, obs];
      }
      observations.sort((a, b) => Date.parse(a.acquired) - Date.parse(b.acquired));
      const corrected = Boolean(editingObs);
      editObservation(null);
      renderObservations();
      renderMeasurements();
      drawPlot();
      toast(corrected ? "observation corrected" : `observation recorded${evidence.length ? ` with ${evidence.length} evidence item(s)` : ""}`);
      loadHistory();
    } catch (e) {
      toast(e.message, true);
    } finally {
      button.disabled = false;
    }
  };

  const observationForm = canWrite()
    ? [h("div", { class: "card", id: "observation-form" },
        h("div", { class: "row" }, h("label", {}, "Date", obsForm.date), h("label", {}, "Phase", obsForm.phase)),
        h("label", {}, "Sensor", obsForm.sensor),
        h("label", {}, "Observation", obsForm.text),
        obsKeep,
        h("label", {}, "Evidence files", obsForm.files),
        obsForm.url,
        h("div", { class: "row" }, obsAddButton, obsCancel),
      )]
    : [];

  // --- sources the site cites ---------------------------------------------------------------
  const sourceList = h("ul", { class: "list", id: "source-list" });
  const citeSelect = h("select", { id: "cite-source" });
  function renderSources() {
    const byId = Object.fromEntries(sources.map((s) => [s.id, s]));
    sourceList.replaceChildren(
      ...site.source_ids.map((id) => {
        const s = byId[id] || { id, citation: id };
        return h("li", { "data-source": id }, s.citation,
          s.url ? [" ", evidenceLink(s.url)] : null,
          h("span", { class: "muted" }, [s.accessed ? ` · accessed ${s.accessed}` : "", s.licence ? ` · ${s.licence}` : ""].join("")),
          canWrite() ? h("button", { class: "uncite", title: "stop citing this source", onclick: () => uncite(id) }, "×") : null);
      }),
    );
    if (!site.source_ids.length) sourceList.append(h("li", { class: "muted" }, "no source cited"));
    citeSelect.replaceChildren(...sources.filter((s) => !site.source_ids.includes(s.id)).map((s) => h("option", { value: s.id }, s.citation)));
  }
  renderSources();
  const setSources = async (ids) => {
    site = await patch(`/api/sites/${site.id}`, { version: site.version, source_ids: ids });
    versionNote.textContent = `version ${site.version}`;
    renderSources();
    loadHistory();
  };
  const cite = (id) => setSources([...site.source_ids, id]);
  const uncite = async (id) => {
    try {
      await setSources(site.source_ids.filter((x) => x !== id));
      toast("source no longer cited");
    } catch (e) {
      toast(e.message, true);
    }
  };
  const newCitation = h("input", { type: "text", id: "source-citation", placeholder: "citation, e.g. CSIS, Undeclared North Korea (2018)" });
  const newUrl = h("input", { type: "url", id: "source-url", placeholder: "https://..." });
  const sourceForm = canWrite()
    ? [h("div", { class: "card", id: "source-form" },
        h("div", { class: "row" }, citeSelect, h("button", { id: "cite-add", onclick: async () => {
          if (!citeSelect.value) return toast("every source is cited already; add a new one", true);
          try { await cite(citeSelect.value); toast("source cited"); } catch (e) { toast(e.message, true); }
        } }, "Cite")),
        newCitation,
        h("div", { class: "row" }, newUrl, h("button", { id: "source-add", onclick: async () => {
          if (!newCitation.value.trim()) return toast("give the citation", true);
          try {
            const src = await post("/api/sources", { citation: newCitation.value.trim(), url: newUrl.value.trim() || null });
            sources = [...sources, src];
            await cite(src.id);
            newCitation.value = newUrl.value = "";
            toast("source added and cited");
          } catch (e) { toast(e.message, true); }
        } }, "Add and cite")),
      )]
    : [];

  const historyList = h("ul", { class: "list", id: "history-list" });
  async function loadHistory() {
    const hist = await get(`/api/sites/${site.id}/history?limit=20`);
    historyList.replaceChildren(...hist.reverse().map((e) => {
      const what = historyText(e);
      return h("li", { class: "muted" }, `${e.at.slice(0, 16).replace("T", " ")} ${e.actor} ${e.action} ${e.entity.replaceAll("_", " ")}`,
        what ? h("span", { class: "history-what" }, `: ${what}`) : null);
    }));
  }
  loadHistory();

  for (const [k, label] of [["point", "Draw point"], ["polygon", "Draw polygon"], ["shadow", "Measure height"], ["ruler", "Measure distance"]]) {
    toolButtons[k] = h("button", { id: `tool-${k}`, onclick: () => setTool(k) }, label);
  }

  document.getElementById("panel").replaceChildren(
    h("p", {}, h("a", { href: "#/sites" }, "← all sites")),
    h("h2", { id: "site-title" }, site.name),
    h("div", { class: "muted" }, `${site.id} · ${site.lat.toFixed(4)}, ${site.lon.toFixed(4)} · `, versionNote, " · ", h("a", { href: `#/reports/${encodeURIComponent(site.id)}`, id: "site-report" }, "brief / report")),
    h("h3", {}, "Imagery"),
    imageryBox,
    changeToggle,
    h("h3", {}, "Activity"),
    plot,
    h("h3", {}, "Change events"),
    eventList,
    h("h3", {}, "Site"),
    h("label", {}, "Name", f.name),
    h("div", { class: "row" }, h("label", {}, "Status", f.status), h("label", {}, "Category", f.category)),
    h("label", {}, "Tags (comma separated)", f.tags),
    h("label", {}, "Notes", f.notes),
    // replaceChildren, unlike h(), would show a null as the text "null": spread [] instead
    ...(canWrite() ? [h("button", { class: "primary", id: "site-save", onclick: saveSite }, "Save site")] : []),
    h("h3", {}, "Open alerts"),
    alertList,
    h("h3", {}, "Features"),
    ...(canWrite()
      ? [h("div", { class: "row" }, drawKind, toolButtons.point, toolButtons.polygon, h("button", { id: "draw-finish", onclick: () => tool === "polygon" && finishPolygon() }, "Finish"))]
      : []),
    featureList,
    editor,
    h("h3", {}, "Shadow height"),
    h("div", { class: "row" }, toolButtons.shadow),
    shadowOut,
    h("h3", {}, "Distance"),
    h("div", { class: "row" }, toolButtons.ruler),
    rulerOut,
    h("h3", {}, "Measurements"),
    measurementList,
    h("h3", {}, "Measured change"),
    changeList,
    h("h3", {}, "Terrain"),
    terrainBox,
    h("h3", {}, "Range rings"),
    h("label", {}, ringToggle, " show the rings of the classes chosen (none chosen: all)"),
    ringClasses,
    ringInfo,
    h("h3", {}, "Observations"),
    ...observationForm,
    observationList,
    h("h3", {}, "Sources"),
    sourceList,
    ...sourceForm,
    h("h3", {}, "History"),
    historyList,
  );
  showImagery();
  renderFeatures();
  return () => cleanups.forEach((fn) => fn());
}
