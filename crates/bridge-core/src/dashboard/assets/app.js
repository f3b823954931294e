// codex-bridge dashboard: plain JS, no dependencies, no network beyond this bridge's /api/.
// Pages by hash: #/overview, #/sessions, #/sessions/<id>, #/quota, #/projects. Charts are inline SVG.
// Every value the bridge does not know arrives as null and is shown as "unknown", never as 0.
"use strict";

const $main = document.getElementById("main");
const state = { hours: localStorage.getItem("cb-hours") || "24", search: "", refresh: null };

function esc(v) {
  return String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
const UNKNOWN = '<span class="unknown">unknown</span>';
function num(v) {
  if (v === null || v === undefined) return UNKNOWN;
  if (v >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (v >= 1e4) return (v / 1e3).toFixed(1) + "K";
  return String(v);
}
function pct(v, digits = 1) {
  return v === null || v === undefined ? UNKNOWN : (v * 100).toFixed(digits) + "%";
}
function when(ms) {
  if (ms === null || ms === undefined) return UNKNOWN;
  return esc(new Date(ms).toLocaleString());
}
function ago(ms) {
  if (ms === null || ms === undefined) return UNKNOWN;
  const s = Math.round((Date.now() - ms) / 1000);
  const abs = Math.abs(s);
  const text = abs < 60 ? abs + "s" : abs < 3600 ? Math.round(abs / 60) + " min" : abs < 172800 ? (abs / 3600).toFixed(1) + " h" : Math.round(abs / 86400) + " d";
  return s >= 0 ? text + " ago" : "in " + text;
}
async function api(path) {
  const r = await fetch(path, { credentials: "same-origin", headers: { accept: "application/json" } });
  if (r.status === 401) { location.reload(); throw new Error("login needed"); }
  if (!r.ok) {
    let msg = r.status + "";
    try { msg = (await r.json()).error.message; } catch (_) { /* keep the status */ }
    throw new Error(msg);
  }
  return r.json();
}
function stat(label, value, note, id) {
  return `<div class="card stat"${id ? ` data-testid="${id}"` : ""}><div class="label">${esc(label)}</div>` +
    `<div class="value">${value}</div><div class="note">${note || ""}</div></div>`;
}
function outcomeChip(o) {
  if (o === null || o === undefined) return '<span class="chip">no usage</span>';
  const cls = o === "hit" ? "hit" : o === "partial" ? "partial" : "miss";
  return `<span class="chip ${cls}">${esc(o)}</span>`;
}

// Why a turn missed, in words; `brk` is where the prefix broke ({position, field}) when known.
function explain(outcome, brk) {
  if (!outcome) return "No usage reported: nothing to explain.";
  if (outcome.startsWith("prefix-changed@")) {
    const field = brk ? brk.field : "input";
    const at = brk && brk.position !== null ? brk.position : "?";
    return `The prefix changed at item ${esc(at)} of ${esc(field)}: everything from there on was sent uncached.`;
  }
  return {
    "hit": "Hit: the expected prefix came from the cache.",
    "partial": "Partial: fewer cached tokens than the unchanged prefix allows, for no recorded reason.",
    "below-minimum": "Below the minimum: the prompt is under the backend's smallest cacheable size.",
    "new-identity": "New identity: the first request under this cache key, nothing could be cached yet.",
    "idle-expired": "Idle expired: the session was idle longer than the upstream cache lifetime.",
    "unexplained": "Unexplained: nothing the bridge recorded explains the miss.",
  }[outcome] || esc(outcome);
}

// A line chart of `values` (0..1 or null) over `labels`, with request bars behind it.
function shareChart(series) {
  const W = 900, H = 220, L = 44, R = 12, T = 12, B = 26;
  const n = series.length;
  if (!n) return '<p class="muted">No requests in this window.</p>';
  const x = (i) => L + ((i + 0.5) * (W - L - R)) / n;
  const y = (v) => T + (1 - v) * (H - T - B);
  const maxReq = Math.max(1, ...series.map((b) => b.requests));
  const bw = Math.max(2, (W - L - R) / n - 3);
  let svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="cached share over time" data-testid="share-chart">`;
  for (const g of [0, 0.25, 0.5, 0.75, 1]) {
    svg += `<line class="axis" x1="${L}" x2="${W - R}" y1="${y(g)}" y2="${y(g)}"/><text x="4" y="${y(g) + 4}">${g * 100}%</text>`;
  }
  series.forEach((b, i) => {
    const h = (b.requests / maxReq) * (H - T - B) * 0.5;
    svg += `<rect class="bar" x="${x(i) - bw / 2}" y="${H - B - h}" width="${bw}" height="${h}"><title>${b.requests} requests</title></rect>`;
  });
  let path = "", open = false;
  series.forEach((b, i) => {
    if (b.cached_share === null) { open = false; return; }
    path += `${open ? "L" : "M"}${x(i).toFixed(1)},${y(b.cached_share).toFixed(1)} `;
    open = true;
  });
  if (path) svg += `<path class="line" d="${path}"/>`;
  series.forEach((b, i) => {
    if (b.cached_share !== null) svg += `<circle class="pt" cx="${x(i)}" cy="${y(b.cached_share)}" r="3"><title>${(b.cached_share * 100).toFixed(1)}% cached, ${b.requests} requests</title></circle>`;
  });
  const first = new Date(series[0].start_ms), last = new Date(series[n - 1].start_ms);
  svg += `<text x="${L}" y="${H - 6}">${esc(first.toLocaleString())}</text><text x="${W - R}" y="${H - 6}" text-anchor="end">${esc(last.toLocaleString())}</text>`;
  return svg + "</svg>" +
    '<div class="legend"><span><i class="sw-line"></i>cached share (gaps: unknown)</span><span><i class="sw-bar"></i>requests</span></div>';
}

function groupTable(title, groups) {
  const rows = Object.entries(groups).map(([name, t]) =>
    `<tr><td>${esc(name)}</td><td class="num">${t.requests}</td><td class="num">${num(t.input_tokens)}</td>` +
    `<td class="num">${num(t.cached_tokens)}</td><td class="num">${pct(t.cached_share)}</td><td class="num">${num(t.output_tokens)}</td></tr>`).join("");
  return `<div class="card"><h2>${esc(title)}</h2><table><thead><tr><th>name</th><th class="num">requests</th>` +
    `<th class="num">input</th><th class="num">cached</th><th class="num">cached share</th><th class="num">output</th></tr></thead>` +
    `<tbody>${rows || '<tr><td colspan="6" class="muted">none</td></tr>'}</tbody></table></div>`;
}
function countTable(title, entries, head) {
  const rows = entries.map(([k, v]) => `<tr><td>${k}</td><td class="num">${v}</td></tr>`).join("");
  return `<div class="card"><h2>${esc(title)}</h2><table><thead><tr><th>${esc(head)}</th><th class="num">count</th></tr></thead>` +
    `<tbody>${rows || '<tr><td colspan="2" class="muted">none</td></tr>'}</tbody></table></div>`;
}

async function overview() {
  const o = await api(`/api/overview?hours=${encodeURIComponent(state.hours)}&buckets=24`);
  const t = o; // totals are flattened into the overview
  const span = { "1": "last hour", "24": "last 24 hours", "168": "last 7 days", "all": "all time" }[state.hours] || state.hours + " h";
  const failed = o.errors.reduce((a, e) => a + e.count, 0);
  const top = o.errors.slice().sort((a, b) => b.count - a.count)[0];
  $main.innerHTML =
    `<div class="toolbar"><div><h1>Overview</h1><p class="sub">Requests, tokens and where the cached tokens went (${esc(span)}).</p></div>` +
    `<select id="hours" class="push">${[["1", "1 hour"], ["24", "24 hours"], ["168", "7 days"], ["all", "all time"]]
      .map(([v, l]) => `<option value="${v}"${v === state.hours ? " selected" : ""}>${l}</option>`).join("")}</select></div>` +
    '<div class="grid">' +
    stat("Requests", String(t.requests), `${t.rows_without_usage} without usage`, "stat-requests") +
    stat("Input tokens", num(t.input_tokens), "cached tokens are part of input", "stat-input") +
    stat("Cached tokens", num(t.cached_tokens), "cached share " + pct(t.cached_share), "stat-cached") +
    stat("Cache-write tokens", num(t.cache_write_tokens), "reported by the upstream", "stat-cache-write") +
    stat("Output tokens", num(t.output_tokens), "", "stat-output") +
    stat("Error rate", pct(o.error_rate), failed ? `${failed} failed; most: ${esc(top.status)} ${esc(top.kind)}` : "no failed requests", "stat-errors") +
    stat("Active sessions", String(o.active_sessions), `with a request in the last ${Math.round(o.active_window_ms / 60000)} min`, "stat-active") +
    "</div>" +
    `<div class="card mb"><h2>Cached share over time</h2>${shareChart(o.series.map((b) => ({ start_ms: b.start_ms, requests: b.requests, cached_share: b.cached_share })))}</div>` +
    '<div class="cols">' + groupTable("By client", o.by_client) + groupTable("By model", o.by_model) + "</div>" +
    '<div class="cols">' +
    countTable("Errors by kind", o.errors.map((e) => [`${esc(e.status)} <span class="muted">${esc(e.kind)}</span>`, e.count]), "status") +
    countTable("Transport mix", Object.entries(o.transports).map(([k, v]) => [esc(k), v]), "transport") +
    countTable("Cache outcomes (tracked turns)", Object.entries(o.outcomes).map(([k, v]) => [outcomeChip(k === "no-usage" ? null : k), v]), "outcome") +
    "</div>";
  document.getElementById("hours").addEventListener("change", (e) => {
    state.hours = e.target.value;
    localStorage.setItem("cb-hours", state.hours);
    render();
  });
}

async function sessions() {
  const list = await api(`/api/sessions?q=${encodeURIComponent(state.search)}&limit=500`);
  const rows = list.map((s) =>
    `<tr data-testid="session-row" data-session="${esc(s.session)}"><td><a href="#/sessions/${encodeURIComponent(s.session)}">${esc(s.session)}</a></td>` +
    `<td><code>${esc(s.key)}</code></td><td class="num">${s.turns}</td><td class="num">${num(s.input_tokens)}</td>` +
    `<td class="num">${num(s.cached_tokens)}</td><td class="num">${pct(s.hit_ratio)}</td><td>${outcomeChip(s.last_outcome)}</td>` +
    `<td>${ago(s.last_ts_ms)}</td></tr>`).join("");
  const focused = document.activeElement && document.activeElement.id === "search";
  $main.innerHTML =
    '<h1>Sessions</h1><p class="sub">Every tracked session, newest first. Open one for its lineage and turns.</p>' +
    `<div class="toolbar"><input id="search" type="search" placeholder="search session id or cache key" value="${esc(state.search)}"><span class="muted">${list.length} shown</span></div>` +
    '<div class="card"><table><thead><tr><th>session</th><th>cache key</th><th class="num">turns</th><th class="num">input</th>' +
    '<th class="num">cached</th><th class="num">cached share</th><th>last outcome</th><th>last turn</th></tr></thead>' +
    `<tbody>${rows || '<tr><td colspan="8" class="muted">no tracked session</td></tr>'}</tbody></table></div>`;
  const input = document.getElementById("search");
  if (focused) { input.focus(); input.setSelectionRange(input.value.length, input.value.length); }
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.search = input.value; render(); }, 200);
  });
}

// The lineage as a tree: the root on top, its forks below, the shown session outlined.
function lineageTree(lineage, current) {
  // In a shared namespace several roots share the root key: the shown session's own root comes first.
  const roots = lineage.members.filter((m) => m.role === "root");
  const root = roots.find((m) => m.session === current) || roots[0];
  const forks = lineage.members.filter((m) => m.role === "fork");
  const nw = 210, nh = 46, gap = 18;
  const width = Math.max(nw + 20, forks.length * (nw + gap) + 20);
  const H = forks.length ? 170 : 80;
  const node = (m, x, y, label) =>
    `<g class="node${m && m.session === current ? " current" : ""}" data-testid="lineage-node" data-role="${m ? esc(m.role) : "root"}" data-fork="${m && m.fork !== null ? m.fork : ""}" data-session="${m ? esc(m.session) : ""}">` +
    `<rect x="${x}" y="${y}" width="${nw}" height="${nh}" rx="8"/>` +
    `<text x="${x + 10}" y="${y + 19}">${esc(label)}</text>` +
    `<text class="small" x="${x + 10}" y="${y + 36}">${m ? esc(m.session.length > 30 ? m.session.slice(0, 29) + "…" : m.session) + " · " + m.turns + " turns" : "not tracked here"}</text></g>`;
  const rx = (width - nw) / 2;
  let svg = `<svg class="fit" viewBox="0 0 ${width} ${H}" width="${width}" height="${H}" data-testid="lineage">`;
  forks.forEach((f, i) => {
    const fx = 10 + i * (nw + gap);
    svg += `<path class="edge" d="M${rx + nw / 2},${10 + nh} C${rx + nw / 2},${80} ${fx + nw / 2},${80} ${fx + nw / 2},${110}"/>`;
  });
  svg += node(root, rx, 10, "root");
  forks.forEach((f, i) => { svg += node(f, 10 + i * (nw + gap), 110, `fork ${f.fork}`); });
  return svg + "</svg>";
}

// Cached share per turn: one point per turn, misses in red, unknown turns as hollow marks on the axis.
function turnChart(turns) {
  const W = 900, H = 200, L = 44, R = 16, T = 12, B = 26, n = turns.length;
  const x = (i) => L + (n === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
  const y = (v) => T + (1 - v) * (H - T - B);
  let svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="cached share per turn" data-testid="turn-chart">`;
  for (const g of [0, 0.5, 1]) svg += `<line class="axis" x1="${L}" x2="${W - R}" y1="${y(g)}" y2="${y(g)}"/><text x="4" y="${y(g) + 4}">${g * 100}%</text>`;
  let path = "", open = false;
  turns.forEach((t, i) => {
    if (t.cached_share === null) { open = false; return; }
    path += `${open ? "L" : "M"}${x(i).toFixed(1)},${y(t.cached_share).toFixed(1)} `;
    open = true;
  });
  if (path) svg += `<path class="line" d="${path}"/>`;
  turns.forEach((t, i) => {
    const cls = t.miss ? "pt miss" : t.outcome === "partial" ? "pt partial" : "pt";
    const v = t.cached_share;
    const title = `turn ${i + 1}: ${v === null ? "unknown" : (v * 100).toFixed(1) + "% cached"} (${t.outcome || "no usage"})`;
    svg += v === null
      ? `<circle data-testid="turn-point" data-turn="${i + 1}" class="pt" cx="${x(i)}" cy="${y(0)}" r="4" fill-opacity="0" stroke="currentColor"><title>${esc(title)}</title></circle>`
      : `<circle data-testid="turn-point" data-turn="${i + 1}" class="${cls}" cx="${x(i)}" cy="${y(v)}" r="5"><title>${esc(title)}</title></circle>`;
    svg += `<text x="${x(i)}" y="${H - 8}" text-anchor="middle">${i + 1}</text>`;
  });
  return svg + "</svg>";
}

async function session(id) {
  const d = await api(`/api/sessions/${encodeURIComponent(id)}`);
  const l = d.lineage;
  const rows = d.turns.map((t, i) => {
    const brk = t.prefix_break;
    const where = brk ? `<div class="where">prefix broke at item ${brk.position === null ? "?" : esc(brk.position)} of ${esc(brk.field)}</div>` : "";
    return `<tr data-testid="turn-row"><td class="num">${i + 1}</td><td>${when(t.ts_ms)}</td><td>${esc(t.classification)}</td>` +
      `<td class="num">${t.items}</td><td class="num">${num(t.input_tokens)}</td><td class="num">${num(t.cached_tokens)}</td>` +
      `<td class="num">${pct(t.cached_share)}</td><td>${outcomeChip(t.outcome)}</td>` +
      `<td class="explain"${t.miss ? ' data-testid="miss-explanation"' : ""}>${t.miss || t.outcome === "partial" ? explain(t.outcome, brk) + where : ""}</td></tr>`;
  }).join("");
  const kinds = [...new Set(d.turns.map((t) => t.key_kind))].join(", ");
  $main.innerHTML =
    `<p><a href="#/sessions">← Sessions</a></p><h1 data-testid="session-title">${esc(d.session)}</h1>` +
    `<p class="sub">Cache key kind: ${esc(kinds)} · root key <code>${esc(l.root_key)}</code>` +
    (l.namespace ? ` · namespace <span class="chip" data-testid="namespace">${esc(l.namespace)}</span>` : " · no shared namespace") + "</p>" +
    `<div class="card mb"><h2>Lineage</h2>${lineageTree(l, d.session)}</div>` +
    `<div class="card mb"><h2>Cached share per turn</h2>${turnChart(d.turns)}</div>` +
    '<div class="card"><h2>Turns</h2><table><thead><tr><th class="num">#</th><th>time</th><th>classification</th><th class="num">items</th>' +
    '<th class="num">input</th><th class="num">cached</th><th class="num">cached share</th><th>outcome</th><th>why</th></tr></thead>' +
    `<tbody>${rows}</tbody></table></div>`;
}

function quotaWindow(title, w, id) {
  if (!w) return `<div class="card" data-testid="${id}"><h2>${esc(title)}</h2><div class="stat"><div class="value" data-testid="${id}-used">${UNKNOWN}</div>` +
    '<div class="note">the upstream has not reported this window yet</div></div></div>';
  const high = w.used_percent >= 80 ? " high" : "";
  const reset = w.reset_at_s === null ? UNKNOWN : `${when(w.reset_at_s * 1000)} (${ago(w.reset_at_s * 1000)})`;
  return `<div class="card" data-testid="${id}"><h2>${esc(title)}</h2><div class="stat"><div class="value" data-testid="${id}-used">${w.used_percent.toFixed(1)}% used</div></div>` +
    `<svg class="meter" viewBox="0 0 100 4" preserveAspectRatio="none" aria-hidden="true"><rect class="track" width="100" height="4" rx="2"/>` +
    `<rect class="fill${high}" width="${Math.max(0, Math.min(100, w.used_percent))}" height="4" rx="2"/></svg>` +
    `<table><tr><td>resets</td><td data-testid="${id}-reset">${reset}</td></tr>` +
    `<tr><td>window</td><td>${w.window_minutes === null ? UNKNOWN : esc(w.window_minutes) + " min"}</td></tr></table></div>`;
}

async function quota() {
  const q = await api("/api/quota");
  const plan = q.plan || q.token_plan;
  const intro = q.mode === "chatgpt" ? "The ChatGPT plan's windows as the upstream last reported them (rate-limit headers and events)."
    : `The plan windows the upstream's responses reported. The bridge runs in ${esc(q.mode)} mode: the plan and token expiry are known only with a ChatGPT login.`;
  $main.innerHTML = `<h1>Quota</h1><p class="sub">${intro}</p>` +
    '<div class="grid">' +
    stat("Plan", plan ? esc(plan) : UNKNOWN, q.plan ? "from the upstream" : q.token_plan ? "from the login token" : "", "quota-plan") +
    stat("Limit reached", q.limit_reached === null ? UNKNOWN : q.limit_reached ? "yes" : "no", "", "quota-limit") +
    stat("Token expires", q.token_expires_at_ms === null ? UNKNOWN : ago(q.token_expires_at_ms), q.token_expires_at_ms === null ? "" : when(q.token_expires_at_ms) + " · refreshed ahead of time", "quota-token") +
    stat("Last report", q.observed_ms === null ? UNKNOWN : ago(q.observed_ms), q.source ? "from " + esc(q.source) : "", "quota-observed") +
    "</div>" +
    '<div class="cols">' + quotaWindow("5-hour window", q.primary, "quota-primary") + quotaWindow("Weekly window", q.secondary, "quota-secondary") + "</div>";
}

// The task graph: tasks in columns by dependency depth, edges from each dependency.
function taskGraph(tasks) {
  if (!tasks.length) return '<p class="muted">No tasks yet.</p>';
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const depth = new Map();
  const depthOf = (t, seen = new Set()) => {
    if (depth.has(t.id)) return depth.get(t.id);
    if (seen.has(t.id)) return 0;
    seen.add(t.id);
    const d = t.depends_on.reduce((m, id) => (byId.has(id) ? Math.max(m, depthOf(byId.get(id), seen) + 1) : m), 0);
    depth.set(t.id, d);
    return d;
  };
  tasks.forEach((t) => depthOf(t));
  const cols = [];
  tasks.forEach((t) => { const d = depth.get(t.id); (cols[d] = cols[d] || []).push(t); });
  const nw = 200, nh = 48, gx = 60, gy = 14;
  const pos = new Map();
  cols.forEach((c, i) => c.forEach((t, j) => pos.set(t.id, [10 + i * (nw + gx), 10 + j * (nh + gy)])));
  const W = 20 + cols.length * (nw + gx) - gx, H = 20 + Math.max(...cols.map((c) => c.length)) * (nh + gy) - gy;
  let svg = `<svg class="fit" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" data-testid="task-graph"><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="currentColor"/></marker></defs>`;
  tasks.forEach((t) => t.depends_on.forEach((d) => {
    if (!pos.has(d)) return;
    const [x1, y1] = pos.get(d), [x2, y2] = pos.get(t.id);
    svg += `<path class="edge" marker-end="url(#arrow)" d="M${x1 + nw},${y1 + nh / 2} C${x1 + nw + gx / 2},${y1 + nh / 2} ${x2 - gx / 2},${y2 + nh / 2} ${x2},${y2 + nh / 2}"/>`;
  }));
  tasks.forEach((t) => {
    const [x, y] = pos.get(t.id);
    const title = t.title.length > 28 ? t.title.slice(0, 27) + "…" : t.title;
    svg += `<g class="node task ${esc(t.status)}" data-testid="task-node"><rect x="${x}" y="${y}" width="${nw}" height="${nh}" rx="8"/>` +
      `<text x="${x + 10}" y="${y + 20}">${esc(title)}</text><text class="small" x="${x + 10}" y="${y + 37}">${esc(t.id)} · ${esc(t.status.replace("_", " "))}</text><title>${esc(t.title)}</title></g>`;
  });
  return svg + "</svg>";
}

async function projects() {
  const p = await api("/api/projects");
  const cards = p.projects.map((pr) => {
    const drift = pr.drift_events.slice().reverse().map((e) =>
      `<tr><td>${esc(e.ts)}</td><td>${esc(e.session || "")}</td><td>${esc((e.drift && e.drift.kind) || "")}</td><td>${e.resolved ? esc(e.resolved) : '<span class="chip miss">open</span>'}</td></tr>`).join("");
    const rollups = pr.rollups.slice().reverse().map((r) =>
      `<tr><td>${esc(r.ts)}</td><td>${esc(r.session)}</td><td>${esc(r.reason)}</td><td class="num">${esc(r.turns)}</td></tr>`).join("");
    return `<div class="card mb" data-testid="project"><h2>${esc(pr.root)}</h2>` +
      `<h2 class="muted">Task graph</h2>${taskGraph(pr.tasks)}` +
      '<div class="cols mt"><div><h2 class="muted">Drift events</h2><table><thead><tr><th>time</th><th>session</th><th>kind</th><th>resolved</th></tr></thead>' +
      `<tbody>${drift || '<tr><td colspan="4" class="muted">none</td></tr>'}</tbody></table></div>` +
      '<div><h2 class="muted">Recent roll-ups</h2><table><thead><tr><th>time</th><th>session</th><th>reason</th><th class="num">turns</th></tr></thead>' +
      `<tbody>${rollups || '<tr><td colspan="4" class="muted">none</td></tr>'}</tbody></table></div></div></div>`;
  }).join("");
  const digests = p.digests.map((d) => `<tr><td><code>${esc(d.name)}</code></td><td>${when(d.modified_ms)}</td><td class="num">${d.bytes}</td></tr>`).join("");
  $main.innerHTML = '<h1>Projects</h1><p class="sub">Task graphs, git drift and digests from the journal.</p>' +
    (cards || '<div class="card muted mb">No project yet: the journal records one when a request names its working directory.</div>') +
    '<div class="card"><h2>Recent digests</h2><table><thead><tr><th>file</th><th>written</th><th class="num">bytes</th></tr></thead>' +
    `<tbody>${digests || '<tr><td colspan="3" class="muted">none (write one with <code>codex-bridge sessions digest ID</code>)</td></tr>'}</tbody></table></div>`;
}

let rendering = Promise.resolve();
function render() {
  const hash = location.hash.replace(/^#\/?/, "") || "overview";
  const [page, ...rest] = hash.split("/");
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  const run = {
    overview, sessions, quota, projects,
  }[page];
  const task = page === "sessions" && rest.length ? () => session(decodeURIComponent(rest.join("/"))) : run || overview;
  rendering = rendering.then(task).then(() => { document.body.dataset.ready = hash; })
    .catch((e) => { $main.innerHTML = `<div class="card"><h2>Could not load this page</h2><p class="error">${esc(e.message)}</p></div>`; });
  return rendering;
}

// Live updates: each new turn re-renders the page shown (at most every 500 ms) and shows a note.
function live() {
  const badge = document.getElementById("live");
  const es = new EventSource("/api/live");
  let pending = null, toast = null;
  es.addEventListener("open", () => { badge.textContent = "live"; badge.className = "live on"; });
  es.addEventListener("error", () => { badge.textContent = "reconnecting"; badge.className = "live off"; });
  const refresh = () => { if (!pending) pending = setTimeout(() => { pending = null; render(); }, 500); };
  es.addEventListener("turn", (e) => {
    const t = JSON.parse(e.data);
    document.body.dataset.liveTurns = String(Number(document.body.dataset.liveTurns || 0) + 1);
    if (!toast) { toast = document.createElement("div"); toast.className = "toast"; document.body.appendChild(toast); }
    toast.textContent = `new turn in ${t.session}: ${t.outcome || "no usage"}`;
    toast.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { toast.hidden = true; }, 5000);
    refresh();
  });
  es.addEventListener("lagged", refresh);
}

window.addEventListener("hashchange", render);
render();
live();
