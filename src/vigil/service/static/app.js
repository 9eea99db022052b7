// Vigil dashboard: plain JavaScript, no dependencies, works offline. Every value from the API is written
// with textContent, never innerHTML, because device names and notes come from outside.
"use strict";

const state = { token: sessionStorage.getItem("vigil-token") || "", selected: null, device: null, alerts: [],
  alert: null, zoom: null, zone: "utc", scale: null, devices: [], imageUrl: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  const text = await response.text();
  const body = text ? JSON.parse(text) : {};
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

const fmtTime = (iso) => iso.replace("T", " ").slice(0, 19);
const fmtNum = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3));

async function refreshHealth() {
  try {
    const health = await api("/health");
    $("health").textContent = health.status;
    $("health").className = `pill ${health.status === "ok" ? "ok" : "bad"}`;
    const mqtt = health.mqtt ? ` · MQTT ${health.mqtt.connected ? "connected" : "disconnected"}` : "";
    $("rates").textContent = `queue ${health.queue_depth}${mqtt}`;
  } catch (err) {
    $("health").textContent = "unreachable";
    $("health").className = "pill bad";
  }
}

async function refreshAlerts() {
  const params = new URLSearchParams({ limit: "100" });
  if ($("status-filter").value) params.set("status", $("status-filter").value);
  if ($("device-filter").value.trim()) params.set("device", $("device-filter").value.trim());
  const data = await api(`/alerts?${params}`);
  state.alerts = data.alerts;
  $("alert-count").textContent = `${data.total} in all`;
  const rows = data.alerts.map((alert) =>
    el(
      "tr",
      { "data-id": alert.id, class: alert.id === state.selected ? "selected" : "", onclick: () => selectAlert(alert.id) },
      el("td", {}, fmtTime(alert.start)),
      el("td", {}, alert.device),
      el("td", {}, el("span", { class: `status ${alert.status}` }, alert.status.replace("_", " "))),
      el("td", {}, `${fmtNum(alert.score / alert.threshold)}×`),
      el("td", { title: alert.explanation }, alert.incident_type),
    ),
  );
  $("alerts").tBodies[0].replaceChildren(...rows);
}

// Asset incidents: one card per incident, its alerts (any modality) listed with what each one saw.
async function refreshIncidents() {
  const data = await api("/incidents?limit=20");
  $("incident-count").textContent = `${data.total} in all`;
  const cards = data.incidents.map((incident) =>
    el("li", { class: `incident ${incident.status}`, "data-id": incident.id },
      el("div", { class: "incident-head" },
        el("strong", { class: "asset" }, incident.asset),
        el("span", { class: `status ${incident.status}` }, incident.status),
        ...incident.modalities.map((m) => el("span", { class: `modality ${m}` }, m)),
        el("span", { class: "muted" }, `${fmtTime(incident.start)} → ${fmtTime(incident.end)}`),
        incident.merged_into ? el("span", { class: "muted" }, `merged into ${incident.merged_into}`) : ""),
      el("ul", { class: "members" },
        ...incident.alerts.map((alert) =>
          el("li", { class: "member", "data-alert": alert.id, onclick: () => selectAlert(alert.id) },
            el("span", { class: `modality ${alert.modality}` }, alert.modality || "unknown"),
            el("span", { class: "device" }, alert.device),
            el("span", { class: "what" }, alert.incident_type),
            el("span", { class: "explanation-text", title: alert.explanation }, alert.explanation)))),
    ),
  );
  $("incidents").replaceChildren(...(cards.length ? cards : [el("li", { class: "muted" }, "none")]));
}

async function selectAlert(id) {
  state.selected = id;
  const alert = await api(`/alerts/${encodeURIComponent(id)}`);
  state.alert = alert;
  $("detail").hidden = false;
  $("detail-id").textContent = alert.id;
  $("detail-explanation").textContent = alert.explanation;
  const fields = [
    ["device", alert.device], ["modality", alert.modality || "unknown"], ["status", alert.status], ["from", fmtTime(alert.start)], ["to", fmtTime(alert.end)],
    ["points", alert.n_points], ["peak score", fmtNum(alert.score)], ["threshold", fmtNum(alert.threshold)],
    ["model", alert.model_version], ["incident", alert.incident_type],
  ];
  $("detail-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("detail-features").replaceChildren(
    ...alert.top_features.map(([name, share]) =>
      el("div", { class: "bar" }, el("span", { title: name }, name),
        el("div", {}, el("div", { class: "fill", style: `width:${(100 * share).toFixed(1)}%` })),
        el("span", {}, `${(100 * share).toFixed(0)} %`)),
    ),
  );
  $("detail-feedback").replaceChildren(
    ...(alert.feedback.length ? alert.feedback : [null]).map((f) =>
      f ? el("li", {}, `${fmtTime(f.time)} ${f.verdict}${f.user ? ` by ${f.user}` : ""}${f.note ? `: ${f.note}` : ""}`)
        : el("li", { class: "muted" }, "none yet"),
    ),
  );
  for (const row of $("alerts").tBodies[0].rows) row.classList.toggle("selected", row.dataset.id === id);
  await showAlertImage(alert);
  // Only devices that send telemetry have a score timeline: a camera or a network alert leaves it as it was.
  await refreshDevices();
  if (state.device !== alert.device && state.devices.includes(alert.device)) {
    state.device = alert.device;
    $("device-select").value = state.device;
  }
  await refreshTimeline();
}

// A camera alert's evidence: the frame as the model read it with its anomaly map, colour bar and threshold,
// drawn by the service when the frame was scored. Fetched with the token (an <img src> could not send it).
async function showAlertImage(alert) {
  const figure = $("detail-image"), img = $("detail-frame"), caption = $("detail-image-caption");
  if (alert.modality !== "camera") { figure.hidden = true; img.removeAttribute("src"); return; }
  const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
  const response = await fetch(`/alerts/${encodeURIComponent(alert.id)}/image`, { headers });
  if (state.selected !== alert.id) return;  // another alert was selected meanwhile
  if (state.imageUrl) { URL.revokeObjectURL(state.imageUrl); state.imageUrl = null; }
  figure.hidden = false;
  if (!response.ok) {
    img.hidden = true;
    img.removeAttribute("src");
    caption.textContent = response.status === 404 ? "no image was stored with this alert" : `image: HTTP ${response.status}`;
    return;
  }
  state.imageUrl = URL.createObjectURL(await response.blob());
  img.src = state.imageUrl;
  img.hidden = false;
  caption.textContent = `the frame as the model read it, its anomaly map over it; colour bar from 0 to twice the ` +
    `threshold ${fmtNum(alert.threshold)} (marked); this frame scored ${fmtNum(alert.score)}`;
}

async function sendVerdict(verdict) {
  if (!state.selected) return;
  try {
    const note = $("verdict-note").value;
    await api(`/alerts/${encodeURIComponent(state.selected)}/verdict`, {
      method: "POST", body: JSON.stringify({ verdict, note, user: "dashboard" }),
    });
    $("verdict-note").value = "";
    showError("");
    await refreshAlerts();
    await selectAlert(state.selected);
  } catch (err) {
    showError(`verdict not saved: ${err.message}`);
  }
}

async function refreshDevices() {
  const data = await api("/devices");
  const select = $("device-select");
  const names = data.devices.map((d) => d.device);
  state.devices = names;
  if (!names.includes(state.device)) state.device = names.length ? names[0] : null;
  select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
  if (state.device) select.value = state.device;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

// The device's threshold as feedback set it, who changed it, when and why, and an undo of the latest change.
async function refreshThreshold() {
  const box = $("device-threshold"), list = $("threshold-history");
  let view = null;
  if (state.device) {
    try { view = await api(`/devices/${encodeURIComponent(state.device)}/threshold`); } catch (err) { view = null; }
  }
  if (!view) { box.replaceChildren(); list.replaceChildren(); return; }
  let text = `threshold ${fmtNum(view.threshold)} (model ${fmtNum(view.model_threshold)}, feedback at most ` +
    `${fmtNum(view.bounds.ceiling)})`;
  if (view.guard !== null) text += ` · readings above ${fmtNum(view.guard)} still alarm (guard)`;
  const nodes = [el("span", { class: "threshold-value" }, text)];
  if (view.undoable !== null) {
    nodes.push(el("button", { id: "undo-threshold", onclick: () => undoThreshold(view.undoable) }, "Undo last change"));
  }
  box.replaceChildren(...nodes);
  list.replaceChildren(...view.history.map((c) =>
    el("li", {}, `${fmtTime(c.time)} ${c.action} by ${c.who}: ${fmtNum(c.old)} → ${fmtNum(c.new)} (${c.reason})`)));
}

async function undoThreshold(change) {
  try {
    await api(`/devices/${encodeURIComponent(state.device)}/threshold/undo`, {
      method: "POST", body: JSON.stringify({ user: "dashboard", change }),
    });
    showError("");
    await refreshThreshold();
  } catch (err) {
    showError(`undo refused: ${err.message}`);
  }
}

// Time axis: ticks at a round step chosen for the span shown, labelled in UTC or the browser's zone (the
// zone is always written beside the chart, so a reading is never ambiguous).
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
  172800, 604800].map((s) => s * 1000);

function zoneName() {
  if (state.zone === "utc") return "UTC";
  const offset = -new Date().getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const hh = String(Math.floor(Math.abs(offset) / 60)).padStart(2, "0"), mm = String(Math.abs(offset) % 60).padStart(2, "0");
  return `${Intl.DateTimeFormat().resolvedOptions().timeZone || "browser time"} (UTC${sign}${hh}:${mm})`;
}

function tickLabel(t, step, span) {
  const d = new Date(t);
  const utc = state.zone === "utc";
  const parts = utc
    ? [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()]
    : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
  const p2 = (n) => String(n).padStart(2, "0");
  const date = `${parts[0]}-${p2(parts[1])}-${p2(parts[2])}`;
  const clock = step < 60000 ? `${p2(parts[3])}:${p2(parts[4])}:${p2(parts[5])}` : `${p2(parts[3])}:${p2(parts[4])}`;
  if (step >= 86400000) return date;
  return span > 86400000 ? `${date.slice(5)} ${clock}` : clock;
}

function timeTicks(t0, t1, width) {
  const most = Math.max(2, Math.floor(width / 90));  // a label needs about 90 px
  const step = STEPS.find((s) => (t1 - t0) / s <= most) || STEPS[STEPS.length - 1];
  // Steps of a day or less are aligned in the zone shown, so "10:00" is ten o'clock there.
  const shift = state.zone === "utc" || step > 86400000 ? 0 : -new Date(t0).getTimezoneOffset() * 60000;
  const ticks = [];
  for (let t = Math.ceil((t0 + shift) / step) * step - shift; t <= t1; t += step) ticks.push(t);
  return { ticks, step };
}

// The window shown: the range picker counts back from the newest point (replayed data may be old), and a
// zoom (buttons or a drag) narrows it further until reset.
function visibleRange(first, last) {
  let t0 = first, t1 = last;
  const range = $("range-select").value;
  if (range !== "all") t0 = Math.max(first, last - Number(range) * 1000);
  if (state.zoom) { t0 = Math.max(first, state.zoom[0]); t1 = Math.min(last, state.zoom[1]); }
  if (t1 - t0 < 1000) { const mid = (t0 + t1) / 2; t0 = mid - 500; t1 = mid + 500; }
  return [t0, t1];
}

// Ticks and labels along ``baseline``, between ``left`` and ``right`` (x coordinates).
function drawAxis(nodes, t0, t1, x, left, right, baseline) {
  const { ticks, step } = timeTicks(t0, t1, right - left);
  for (const t of ticks) {
    nodes.push(svg("line", { x1: x(t), y1: baseline, x2: x(t), y2: baseline + 4, stroke: "#9ca3af", class: "tick" }));
    const label = svg("text", { x: x(t), y: baseline + 15, "font-size": 10, fill: "#6b7280", "text-anchor": "middle",
      class: "tick-label" });
    label.textContent = tickLabel(t, step, t1 - t0);
    nodes.push(label);
  }
  nodes.push(svg("line", { x1: left, y1: baseline, x2: right, y2: baseline, stroke: "#d9dde3", class: "axis" }));
}

const AXIS_PAD = { left: 44, right: 12, top: 10, bottom: 34 };

function chartFrame(chart, H) {
  const W = Math.max(280, Math.round(chart.clientWidth || 800));
  chart.setAttribute("viewBox", `0 0 ${W} ${H}`);
  return W;
}

async function refreshTimeline() {
  const chart = $("chart");
  await refreshThreshold();
  $("tz-label").textContent = `times in ${zoneName()}`;
  if (!state.device) { chart.replaceChildren(); $("sensor-charts").replaceChildren(); return; }
  const data = await api(`/devices/${encodeURIComponent(state.device)}/timeline`);
  const all = data.points;
  if (!all.length) { chart.replaceChildren(); $("sensor-charts").replaceChildren(); return; }
  const allTimes = all.map((p) => Date.parse(p.time));
  const [t0, t1] = visibleRange(allTimes[0], allTimes[allTimes.length - 1]);
  const points = all.filter((p, i) => allTimes[i] >= t0 && allTimes[i] <= t1);
  const times = points.map((p) => Date.parse(p.time));
  const H = 240, P = AXIS_PAD;
  const W = chartFrame(chart, H);
  const values = points.flatMap((p) => [p.score, p.threshold]);
  if (!values.length) values.push(0, 1);
  // Anomalies can score hundreds of times the threshold: a log scale keeps normal scores readable.
  const base = points.length ? points[0].threshold : 1;
  const logScale = Math.min(...values) >= 0 && Math.max(...values) > 20 * Math.max(base, 1e-9);
  const f = logScale ? (v) => Math.log10(1 + v) : (v) => v;
  const lo = Math.min(0, ...values.map(f)), hi = Math.max(...values.map(f)) * 1.05 || 1;
  const x = (t) => P.left + ((t - t0) / (t1 - t0)) * (W - P.left - P.right);
  const y = (v) => H - P.bottom - ((f(v) - lo) / (hi - lo)) * (H - P.top - P.bottom);
  state.scale = { t0, t1, W, left: P.left, right: P.right };
  const nodes = [];
  for (const alert of data.alerts) {
    const a = Math.max(Date.parse(alert.start), t0), b = Math.min(Date.parse(alert.end), t1);
    if (b < a) continue;
    const rect = svg("rect", { x: x(a) - 2, y: P.top, width: Math.max(4, x(b) - x(a) + 4), height: H - P.top - P.bottom,
      fill: "rgba(194,51,43,0.15)", class: "alert-span" });
    rect.append(svg("title", {}));
    rect.lastChild.textContent = `${alert.status}: ${alert.explanation}`;
    nodes.push(rect);
  }
  const line = (key, color, cls) => svg("polyline", { fill: "none", stroke: color, "stroke-width": 1.5, class: cls,
    points: points.map((p, i) => `${x(times[i]).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ") });
  nodes.push(line("threshold", "#c2332b", "threshold-line"), line("score", "#2563eb", "score-line"));
  points.forEach((p, i) => {
    if (p.anomaly) nodes.push(svg("circle", { cx: x(times[i]), cy: y(p.score), r: 2.5, fill: "#c2332b", class: "flag" }));
  });
  const top = Math.max(...values);
  for (const [v, dy] of [[top, 10], [0, 0]]) {
    const label = svg("text", { x: P.left - 4, y: y(v) + (dy ? 4 : 0), "font-size": 10, fill: "#6b7280",
      "text-anchor": "end", class: "value-label" });
    label.textContent = fmtNum(v);
    nodes.push(label);
  }
  const caption = svg("text", { x: W - P.right, y: H - 4, "font-size": 10, fill: "#6b7280", "text-anchor": "end",
    class: "axis-caption" });
  caption.textContent = `time (${state.zone === "utc" ? "UTC" : "browser time"})${logScale ? " · score on a log scale" : ""}`;
  nodes.push(caption);
  drawAxis(nodes, t0, t1, x, P.left, W - P.right, H - P.bottom);
  chart.replaceChildren(...nodes);
  drawSensors(points, times, t0, t1);
}

// The raw values of the selected alert's top sensors, on the same time window as the score, one small chart
// each (sensors have their own units, so each has its own scale).
function drawSensors(points, times, t0, t1) {
  const box = $("sensor-charts");
  const alert = state.alert;
  if (!alert || alert.device !== state.device) {
    $("sensor-caption").textContent = "select an alert of this device";
    box.replaceChildren();
    return;
  }
  const names = alert.top_features.map(([name]) => name).filter((name) => points.some((p) => p.values && name in p.values));
  const shown = names.slice(0, 3);
  $("sensor-caption").textContent = shown.length
    ? `the alert's top ${shown.length === 1 ? "sensor" : `${shown.length} sensors`}, as received`
    : "the alert's top features are not sensor readings of this timeline";
  const charts = shown.map((name) => {
    const node = svg("svg", { class: "sensor-chart", "data-sensor": name, role: "img", "aria-label": `${name} values` });
    const H = 110, P = { left: AXIS_PAD.left, right: AXIS_PAD.right, top: 16, bottom: 28 };
    box.append(node);
    const W = chartFrame(node, H);
    const series = points.map((p, i) => [times[i], p.values ? p.values[name] : undefined]).filter(([, v]) => Number.isFinite(v));
    const vs = series.map(([, v]) => v);
    const lo = Math.min(...vs), hi = Math.max(...vs), span = hi - lo || 1;
    const x = (t) => P.left + ((t - t0) / (t1 - t0)) * (W - P.left - P.right);
    const y = (v) => H - P.bottom - ((v - lo) / span) * (H - P.top - P.bottom);
    const nodes = [];
    const title = svg("text", { x: P.left, y: 11, "font-size": 11, fill: "#1d2330", class: "sensor-name" });
    title.textContent = name;
    nodes.push(title);
    for (const v of [hi, lo]) {
      const label = svg("text", { x: P.left - 4, y: y(v) + 4, "font-size": 10, fill: "#6b7280", "text-anchor": "end",
        class: "value-label" });
      label.textContent = fmtNum(v);
      nodes.push(label);
    }
    const a = Math.max(Date.parse(alert.start), t0), b = Math.min(Date.parse(alert.end), t1);
    if (b >= a) nodes.push(svg("rect", { x: x(a) - 2, y: P.top, width: Math.max(4, x(b) - x(a) + 4),
      height: H - P.top - P.bottom, fill: "rgba(194,51,43,0.15)", class: "alert-span" }));
    nodes.push(svg("polyline", { fill: "none", stroke: "#374151", "stroke-width": 1.3, class: "value-line",
      points: series.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }));
    drawAxis(nodes, t0, t1, x, P.left, W - P.right, H - P.bottom);
    node.replaceChildren(...nodes);
    return node;
  });
  box.replaceChildren(...charts);
}

function zoomBy(factor) {
  if (!state.scale) return;
  const { t0, t1 } = state.scale, mid = (t0 + t1) / 2, half = ((t1 - t0) * factor) / 2;
  state.zoom = [mid - half, mid + half];
  refreshTimeline();
}

// Drag across the chart to zoom to that span (the SVG is scaled to its box, so pixels map through the viewBox).
function chartTime(event) {
  const { t0, t1, W, left, right } = state.scale;
  const rect = $("chart").getBoundingClientRect();
  const vx = ((event.clientX - rect.left) * W) / rect.width;
  return t0 + ((vx - left) / (W - left - right)) * (t1 - t0);
}

function setupZoom() {
  const chart = $("chart");
  let from = null;
  chart.addEventListener("mousedown", (event) => { if (state.scale) from = chartTime(event); });
  chart.addEventListener("mouseup", (event) => {
    if (from === null) return;
    const to = chartTime(event);
    const [a, b] = [Math.min(from, to), Math.max(from, to)];
    from = null;
    if (b - a < (state.scale.t1 - state.scale.t0) / 100) return;  // a click, not a drag
    state.zoom = [a, b];
    refreshTimeline();
  });
  $("zoom-in").addEventListener("click", () => zoomBy(0.5));
  $("zoom-out").addEventListener("click", () => zoomBy(2));
  $("zoom-reset").addEventListener("click", () => { state.zoom = null; refreshTimeline(); });
  $("range-select").addEventListener("change", () => { state.zoom = null; refreshTimeline(); });
  $("tz-select").addEventListener("change", () => { state.zone = $("tz-select").value; refreshTimeline(); });
}

async function refreshDeadLetters() {
  const data = await api("/dead-letters?limit=20");
  $("dead-letter-count").textContent = `${data.total} in all`;
  const kinds = Object.entries(data.by_kind || {}).sort((a, b) => b[1] - a[1]);
  $("dead-letter-kinds").replaceChildren(...(kinds.length
    ? kinds.map(([kind, n]) => el("span", { class: "kind", "data-kind": kind }, `${kind} ${n}`))
    : [el("span", { class: "muted" }, "none")]));
  $("dead-letters").tBodies[0].replaceChildren(...data.dead_letters.map((d) =>
    el("tr", {}, el("td", {}, fmtTime(d.received)), el("td", {}, d.kind), el("td", {}, d.device || "—"),
      el("td", { title: d.reason }, d.reason))));
}

async function refreshDrift(models) {
  const rows = [];
  for (const model of models) {
    let report;
    try { report = await api(`/models/${encodeURIComponent(model.name)}/drift`); } catch (err) { continue; }
    const worst = report.checks.reduce((m, c) => (Math.abs(c.z) > Math.abs(m) ? c.z : m), 0);
    rows.push(el("tr", { class: report.drifted ? "drifted" : "", "data-model": model.name },
      el("td", {}, model.name), el("td", {}, report.n),
      el("td", {}, report.checks.length ? fmtNum(worst) : "—"),
      el("td", { title: report.message }, report.drifted ? "drifted" : report.checks.length ? "no" : report.message)));
  }
  $("drift").tBodies[0].replaceChildren(...rows);
}

async function refreshAssets() {
  const data = await api("/devices");
  const declared = data.devices.filter((d) => d.declared).length;
  $("asset-count").textContent = `${data.devices.length} seen or declared · ${declared} declared`;
  $("assets").tBodies[0].replaceChildren(...data.devices.map((d) => {
    const sensors = (d.sensors || []).map((s) => (s.unit ? `${s.name} [${s.unit}]` : s.name));
    const drift = d.drift || { n: 0, z: null, message: "" };
    const classes = [d.silent ? "silent" : "", drift.drifted ? "drifted" : ""].filter(Boolean).join(" ");
    return el("tr", { class: classes, "data-device": d.device }, el("td", {}, d.device), el("td", {}, d.model),
      el("td", {}, d.declared ? "yes" : "no"),
      el("td", { class: "sensors", title: sensors.join(", ") }, String(sensors.length)),
      el("td", {}, d.last_time ? fmtTime(d.last_time) : "never"),
      el("td", {}, d.silent ? `silent since ${fmtTime(d.silent_since)}` : d.last_time ? "sending" : "waiting"),
      el("td", { class: "dead", title: d.last_dead_letter ? `latest: ${d.last_dead_letter}` : "" },
        String(d.dead_letters || 0)),
      el("td", { class: "drift", title: drift.message },
        drift.z === null ? `— (${drift.n} scores)` : `${drift.drifted ? "drifted " : ""}${fmtNum(drift.z)}`));
  }));
}

async function refreshModels() {
  const data = await api("/models");
  await refreshDrift(data.models);
  $("models").replaceChildren(
    ...data.models.map((model) =>
      el("div", { class: "model" },
        el("strong", {}, model.name), ` threshold ${fmtNum(model.threshold)} · ${model.features.length} features`,
        el("button", { class: "rollback", onclick: () => modelAction(`/models/${model.name}/rollback`, {}) }, "Roll back"),
        el("ul", {}, ...model.versions.map((v) =>
          el("li", { class: v.active ? "active-version" : "" }, `${v.version} (${fmtTime(v.created)})`,
            v.active ? " · active" : el("button", { onclick: () =>
              modelAction(`/models/${model.name}/activate`, { version: v.version }) }, "Activate")))),
      ),
    ),
  );
}

async function modelAction(path, body) {
  try {
    await api(path, { method: "POST", body: JSON.stringify(body) });
    showError("");
    await refreshModels();
  } catch (err) {
    showError(`model change refused: ${err.message}`);
  }
}

async function refreshAll() {
  await refreshHealth();
  try {
    await refreshAlerts();
    await refreshIncidents();
    await refreshDevices();
    await refreshTimeline();
    await refreshModels();
    await refreshDeadLetters();
    await refreshAssets();
    if ($("error").textContent.startsWith("cannot read")) showError("");
  } catch (err) {
    showError(`cannot read the API: ${err.message} (enter a token above)`);
  }
}

$("token").value = state.token;
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem("vigil-token", state.token);
  refreshAll();
});
$("status-filter").addEventListener("change", refreshAlerts);
$("device-filter").addEventListener("input", refreshAlerts);
$("device-select").addEventListener("change", () => { state.device = $("device-select").value; refreshTimeline(); });
setupZoom();
$("confirm").addEventListener("click", () => sendVerdict("confirmed"));
$("reject").addEventListener("click", () => sendVerdict("false_positive"));
$("note").addEventListener("click", () => sendVerdict("note"));
refreshAll();
setInterval(refreshAll, 2000);
