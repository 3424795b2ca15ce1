// hark's dashboard: fills the page from /api/status and /api/events, then follows the
// records on /api/stream and the log-mel columns on /api/spectrogram (Server-Sent Events,
// which reconnect by themselves when hark restarts). No libraries, nothing remote.
"use strict";

const $ = (id) => document.getElementById(id);
const events = new Map(); // id -> event, newest last
const HISTORY = 50;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function clock(rfc3339) {
  const d = new Date(rfc3339);
  return isNaN(d) ? rfc3339 : d.toLocaleString();
}

function duration(s) {
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

// ---- level and top labels -------------------------------------------------------------
function showPrediction(level, top, gated) {
  if (typeof level === "number") {
    $("level").textContent = level.toFixed(1) + " dBFS";
    const pct = Math.max(0, Math.min(100, (level + 90) / 90 * 100));
    $("meter-bar").style.width = pct + "%";
  }
  $("gated").textContent = gated ? "(below the level gate: not scored)" : "";
  const ol = $("top");
  ol.replaceChildren();
  for (const t of top || []) {
    const li = el("li");
    li.append(el("span", "label", t.label), " ", el("span", "muted", t.score.toFixed(2)));
    const bar = el("span", "bar");
    bar.style.width = Math.round(Math.max(0, Math.min(1, t.score)) * 100) + "%";
    li.append(bar);
    ol.append(li);
  }
}

// ---- events -----------------------------------------------------------------------------
function eventName(e) { return e.group || e.label; }

function eventItem(e) {
  const li = el("li", e.end === undefined ? "open" : "");
  li.append(el("strong", "name", eventName(e)));
  if (e.group && e.group !== e.label) li.append(" ", el("span", "muted", "(" + e.label + ")"));
  const score = e.peak !== undefined ? "peak " + e.peak.toFixed(2) : "score " + e.score.toFixed(2);
  const span = e.end !== undefined ? ", " + duration(e.end - e.start) : ", since " + clock(e.time);
  li.append(el("div", "muted", clock(e.time) + " · " + score + span));
  if (e.clip) {
    const a = el("audio");
    a.controls = true;
    a.preload = "none";
    a.src = e.clip;
    li.append(a);
  }
  if (e.image) {
    const img = el("img");
    img.alt = "spectrogram of " + eventName(e);
    img.loading = "lazy";
    img.src = e.image;
    li.append(img);
  }
  return li;
}

function renderEvents() {
  const all = [...events.values()];
  const open = all.filter((e) => e.end === undefined);
  const cur = $("current");
  cur.replaceChildren(...(open.length ? open.map(eventItem) : [el("li", "muted", "no sound event")]));
  const last = all.slice(-HISTORY).reverse();
  const hist = $("history");
  hist.replaceChildren(...(last.length ? last.map(eventItem) : [el("li", "muted", "none yet")]));
}

function takeEvent(e) {
  events.delete(e.id);
  events.set(e.id, e);
  while (events.size > HISTORY) events.delete(events.keys().next().value);
}

function onEventStart(r) {
  takeEvent({ id: r.id, label: r.label, group: r.group, start: r.start, time: r.time,
    score: r.score, clip: urlOf(r.clip), image: urlOf(r.image) });
  renderEvents();
}

function onEventEnd(r) {
  const e = events.get(r.id) || { id: r.id, label: r.label, group: r.group, start: r.start,
    time: r.time, score: r.peak };
  e.end = r.end;
  e.peak = r.peak;
  e.clip = urlOf(r.clip) || e.clip;
  e.image = urlOf(r.image) || e.image;
  takeEvent(e);
  renderEvents();
}

// Records carry absolute paths of clips; the server serves them by base name.
function urlOf(path) {
  if (typeof path !== "string" || !path) return undefined;
  if (path.startsWith("/clips/")) return path;
  return "/clips/" + encodeURIComponent(path.split("/").pop());
}

// ---- status -----------------------------------------------------------------------------
const info = { uptimeAt: null, uptime: 0, source: "", model: "" };

function showStatus(s) {
  if (!s) return;
  const subs = s.sinks && s.sinks.socket ? s.sinks.socket.subscribers : undefined;
  const rows = [
    ["uptime", info.uptimeAt === null ? "–" : duration(info.uptime + (Date.now() - info.uptimeAt) / 1000)],
    ["source", info.source || "–"],
    ["model", info.model || "–"],
    ["windows", s.windows],
    ["overruns", s.overruns],
    ["skipped windows", s.skipped_windows],
    ["inference", s.inference_ms.toFixed(1) + " ms per window"],
    ["subscribers", subs === undefined ? "–" : subs],
    ["last status", clock(s.time) + (s.message ? " · " + s.message : "")],
  ];
  $("status").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", "", k), el("dd", "", String(v))]));
  $("where").textContent = (info.source || "") + (info.model ? " · " + info.model : "");
}

let lastStatus = null;

async function load() {
  try {
    const st = await (await fetch("/api/status")).json();
    info.uptime = st.uptime_seconds;
    info.uptimeAt = Date.now();
    info.source = st.source;
    info.model = st.model ? st.model.name : "";
    showPrediction(st.level_db, st.top, st.gated);
    lastStatus = st.status;
    showStatus(lastStatus);
    const ev = await (await fetch("/api/events?limit=" + HISTORY)).json();
    for (const e of ev.events.reverse()) takeEvent(e);
    for (const e of st.current) takeEvent(e);
    renderEvents();
  } catch (err) {
    $("conn").textContent = "cannot reach hark: " + err;
  }
}

// ---- live records -------------------------------------------------------------------------
function follow(url, setup) {
  let es;
  const open = () => {
    es = new EventSource(url);
    setup(es);
    es.onerror = () => {
      $("conn").textContent = "reconnecting…";
      $("conn").className = "conn";
      // A refused stream (503, 401) is not retried by the browser: retry ourselves.
      if (es.readyState === EventSource.CLOSED) setTimeout(open, 5000);
    };
  };
  open();
}

function onRecord(msg) {
  const r = JSON.parse(msg.data);
  switch (r.type) {
    case "hello":
      $("conn").textContent = "live";
      $("conn").className = "conn live";
      info.model = r.model;
      load();
      break;
    case "prediction": showPrediction(r.level_db, r.top, r.gated); break;
    case "event_start": onEventStart(r); break;
    case "event_end": onEventEnd(r); break;
    case "status": lastStatus = r; showStatus(r); break;
    case "dropped": $("conn").textContent = "live (" + r.count + " records lost)"; break;
  }
}

// ---- spectrogram --------------------------------------------------------------------------
const spectro = { ctx: null, top: -Infinity };

function color(v) {
  // Dark blue → teal → yellow → white.
  const stops = [[0, 0, 20], [20, 60, 140], [20, 160, 150], [250, 220, 60], [255, 255, 255]];
  const x = Math.max(0, Math.min(1, v)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return stops[i].map((c, k) => Math.round(c + (stops[i + 1][k] - c) * f));
}

function onColumns(msg) {
  const m = JSON.parse(msg.data);
  const canvas = $("spectrogram");
  const ctx = spectro.ctx || (spectro.ctx = canvas.getContext("2d"));
  const bytes = Uint8Array.from(atob(m.data), (c) => c.charCodeAt(0));
  const cols = bytes.length / m.n_mels;
  if (canvas.height !== m.n_mels) canvas.height = m.n_mels;
  // Follow the loudest value seen (slowly forgetting it); show 80 units below it.
  spectro.top = Math.max(m.hi, spectro.top - 0.5);
  const floor = spectro.top - 80;
  ctx.drawImage(canvas, -cols, 0);
  const img = ctx.createImageData(cols, m.n_mels);
  for (let c = 0; c < cols; c++) {
    for (let b = 0; b < m.n_mels; b++) {
      const v = m.lo + (bytes[c * m.n_mels + b] / 255) * (m.hi - m.lo);
      const [r, g, bl] = color((v - floor) / 80);
      const p = ((m.n_mels - 1 - b) * cols + c) * 4;
      img.data[p] = r; img.data[p + 1] = g; img.data[p + 2] = bl; img.data[p + 3] = 255;
    }
  }
  ctx.putImageData(img, canvas.width - cols, 0);
  $("spectro-note").textContent = m.n_mels + " mel bands · " + Math.round(1 / m.step) + " columns/s";
}

setInterval(() => showStatus(lastStatus), 1000);
load();
follow("/api/stream?subscribe=prediction,event_start,event_end,status", (es) => { es.onmessage = onRecord; });
follow("/api/spectrogram", (es) => { es.addEventListener("mel", onColumns); });
