// Vigil dashboard: plain JavaScript, no dependencies, works offline. Every value from the API is written
// with textContent, never innerHTML, because device names and notes come from outside.
"use strict";

const state = { token: sessionStorage.getItem("vigil-token") || "", selected: null, device: null, alerts: [] };
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
  if (state.device !== alert.device) {
    state.device = alert.device;
    await refreshDevices();
  }
  await refreshTimeline();
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
  if (!state.device && names.length) state.device = names[0];
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

async function refreshTimeline() {
  const chart = $("chart");
  await refreshThreshold();
  if (!state.device) { chart.replaceChildren(); return; }
  const data = await api(`/devices/${encodeURIComponent(state.device)}/timeline`);
  const points = data.points;
  if (!points.length) { chart.replaceChildren(); return; }
  const W = Math.max(300, Math.round(chart.clientWidth || 800)), H = 220, pad = 30;
  chart.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const times = points.map((p) => Date.parse(p.time));
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 1);
  const values = points.flatMap((p) => [p.score, p.threshold]);
  // Anomalies can score hundreds of times the threshold: a log scale keeps normal scores readable.
  const logScale = Math.min(...values) >= 0 && Math.max(...values) > 20 * Math.max(points[0].threshold, 1e-9);
  const f = logScale ? (v) => Math.log10(1 + v) : (v) => v;
  const lo = Math.min(0, ...values.map(f)), hi = Math.max(...values.map(f)) * 1.05 || 1;
  const x = (t) => pad + ((t - t0) / (t1 - t0)) * (W - 2 * pad);
  const y = (v) => H - pad - ((f(v) - lo) / (hi - lo)) * (H - 2 * pad);
  const nodes = [];
  for (const alert of data.alerts) {
    const a = Math.max(Date.parse(alert.start), t0), b = Math.min(Date.parse(alert.end), t1);
    if (b < a) continue;
    const rect = svg("rect", { x: x(a) - 2, y: pad, width: Math.max(4, x(b) - x(a) + 4), height: H - 2 * pad,
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
  const axis = svg("text", { x: pad, y: H - 8, "font-size": 11, fill: "#6b7280" });
  const top = Math.max(...values);
  axis.textContent = `${fmtTime(points[0].time)} → ${fmtTime(points[points.length - 1].time)} · max ${fmtNum(top)}` +
    (logScale ? " · log scale" : "");
  nodes.push(axis, svg("line", { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, stroke: "#d9dde3" }));
  chart.replaceChildren(...nodes);
}

async function refreshModels() {
  const data = await api("/models");
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
$("confirm").addEventListener("click", () => sendVerdict("confirmed"));
$("reject").addEventListener("click", () => sendVerdict("false_positive"));
$("note").addEventListener("click", () => sendVerdict("note"));
refreshAll();
setInterval(refreshAll, 2000);
