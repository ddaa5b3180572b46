// reconciler dashboard. Plain JavaScript, no build step, no third-party code.
//
// Data flow is one way: the daemon pushes a "tick" event after every tick (Server-Sent
// Events) naming the etag of each document; the page fetches a document only when its
// etag changed and it is shown, then renders. While the fleet is idle the page makes no
// request at all besides the open event stream. Countdowns and the stale banner run on
// a local timer. Every value is put in the page with textContent (never as HTML).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    meta: null, fleet: null, rollout: {}, canary: {}, history: null, cell: null,
    etags: {}, have: {}, route: { view: "fleet", arg: null },
    service: null, interval: 10, lastTick: null, lastTickAt: null, clockSkew: 0,
    es: null, rows: [], offsets: [], total: 0, filtered: [], versionClass: {},
    connected: false,
  };
  // What a benchmark or a test reads: first render time, tick receipt times.
  const probe = window.__dashboard = { firstRender: null, ticks: [], renders: 0, fetches: [] };

  // -- small helpers ------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("data-")) el.setAttribute(k, v);
      else if (k === "href" || k === "title" || k === "id" || k === "target" || k === "rel") el.setAttribute(k, v);
      else el[k] = v;
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const svgNS = "http://www.w3.org/2000/svg";
  function s(tag, attrs) {
    const el = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    return el;
  }
  function human(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    const hh = Math.floor(seconds / 3600), mm = Math.floor((seconds % 3600) / 60), ss = seconds % 60;
    return (hh ? hh + "h" : "") + (mm ? mm + "m" : "") + (ss || !(hh || mm) ? ss + "s" : "");
  }
  function ago(iso) {
    if (!iso) return "";
    const secs = (Date.now() - state.clockSkew - Date.parse(iso)) / 1000;
    return secs < 60 ? "just now" : human(secs) + " ago";
  }
  function short(sha) { return sha ? String(sha).slice(0, 10) : ""; }
  function fmt(v, metric) {
    if (v === null || v === undefined) return "–";
    if (metric === "errors") return (v * 100).toFixed(2) + "%";
    if (metric === "latency") return (v * 1000).toFixed(0) + " ms";
    if (metric === "requests") return v.toFixed(1) + "/s per cell";
    return String(Math.round(v * 10000) / 10000);
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

  // -- network: documents by etag, the event stream, the session ------------------------
  async function getDoc(name) {
    probe.fetches.push({ name, at: performance.now() });
    const r = await fetch("/api/" + name, { credentials: "same-origin", cache: "no-store" });
    if (r.status === 401) { showLogin(); throw new Error("unauthorized"); }
    if (r.status === 404) return null;
    if (!r.ok) throw new Error(name + ": HTTP " + r.status);
    const tag = (r.headers.get("ETag") || "").replaceAll('"', "");
    const doc = await r.json();
    state.have[name] = tag;
    return doc;
  }

  function showLogin() {
    $("main").hidden = true;
    $("login").hidden = false;
    if (state.es) { state.es.close(); state.es = null; }
    setLive("signed out", "off");
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    const r = await fetch("/api/session", {
      method: "POST", credentials: "same-origin",
      headers: { Authorization: "Bearer " + token },
    });
    $("token").value = "";
    if (r.status !== 204) {
      $("login-error").hidden = false;
      $("login-error").textContent = "That token was refused.";
      return;
    }
    $("login-error").hidden = true;
    $("login").hidden = true;
    start();
  });

  function setLive(text, cls) {
    const el = $("live");
    el.textContent = text;
    el.className = "pill " + (cls || "");
  }

  function connect() {
    if (state.es) state.es.close();
    const es = new EventSource("/api/events");
    state.es = es;
    es.addEventListener("open", () => { state.connected = true; setLive("live", "on"); });
    es.addEventListener("error", () => {
      state.connected = false;
      if (es.readyState === EventSource.CLOSED) {
        setLive("disconnected", "off");
        // a refused stream (401) is not retried by the browser: check why once
        getDoc("meta").then(() => setTimeout(connect, 2000)).catch(() => {});
      } else {
        setLive("reconnecting…", "off");
      }
    });
    es.addEventListener("tick", (e) => onTick(JSON.parse(e.data)));
    es.addEventListener("hello", (e) => onMeta(JSON.parse(e.data)));
    es.addEventListener("canary", (e) => {
      const doc = JSON.parse(e.data);
      state.canary[doc.service] = doc;
      if (doc.service === state.service) renderCanary();
    });
  }

  function onMeta(meta) {
    state.meta = meta;
    state.interval = meta.interval || state.interval;
    if (meta.lastTickAgeSeconds !== null && state.lastTick === null) {
      state.lastTick = performance.now() - meta.lastTickAgeSeconds * 1000;
    }
  }

  async function onTick(t) {
    probe.ticks.push({ seq: t.seq, atMs: t.atMs, received: performance.timeOrigin + performance.now(), etags: t.etags });
    if (probe.ticks.length > 500) probe.ticks.splice(0, 250);
    state.lastTick = performance.now();
    state.lastTickAt = t.at;
    state.interval = t.interval;
    if (t.atMs) state.clockSkew = Date.now() - t.atMs;
    state.etags = t.etags || {};
    $("revision").textContent = t.revision ? "revision " + short(t.revision) : "";
    $("tick").textContent = "tick #" + t.seq + (t.planned ? "" : " (not planned)");
    $("tick").title = t.snapshotError || t.readiness || "";
    const notice = $("notice");
    notice.hidden = !(t.snapshotError || !t.ready);
    notice.textContent = t.snapshotError ? "Live state unreadable: " + t.snapshotError : "Not ready: " + t.readiness;
    updateStale();
    await refresh(t.cells);
  }

  // Fetch what is shown and changed; cells: the cells that changed (null: maybe all).
  async function refresh(cells) {
    const route = state.route;
    const stale = (name) => state.have[name] === undefined || (state.etags[name] !== undefined && state.have[name] !== state.etags[name]);
    if (route.view === "fleet") {
      if (stale("fleet")) await load("fleet");
      if (state.service && stale("rollout/" + state.service)) await load("rollout/" + state.service);
    }
    if (stale("history")) await load("history");
    if (route.view === "cell") {
      if (!state.cell || state.cell.cell !== route.arg || cells === null || cells.includes(route.arg)) {
        await load("cell/" + route.arg);
      }
    }
    if (route.view === "fleet" && state.service && !state.canary[state.service]) await load("canary/" + state.service);
  }

  async function load(name) {
    try {
      const doc = await getDoc(name);
      if (name === "fleet") { state.fleet = doc; onFleet(); }
      else if (name === "history") { state.history = doc; renderHistory(); }
      else if (name.startsWith("rollout/")) { state.rollout[name.slice(8)] = doc; renderRollout(); }
      else if (name.startsWith("canary/")) { if (doc) { state.canary[doc.service] = doc; renderCanary(); } }
      else if (name.startsWith("cell/")) { state.cell = doc; renderCell(); }
    } catch (err) {
      if (String(err.message) !== "unauthorized") console.warn(err);
    }
  }

  // -- stale banner and countdowns (a local timer: no request) --------------------------
  function updateStale() {
    const banner = $("stale");
    if (state.lastTick === null) { banner.hidden = true; return; }
    const age = (performance.now() - state.lastTick) / 1000;
    const limit = 3 * Math.max(1, state.interval);
    if (age > limit) {
      banner.hidden = false;
      banner.textContent = "Stale: the daemon has not ticked for " + human(age) +
        " (more than 3 intervals of " + human(state.interval) + "). What you see may be out of date.";
    } else {
      banner.hidden = true;
    }
  }
  function tickClock() {
    updateStale();
    const now = Date.now() - state.clockSkew;
    for (const el of document.querySelectorAll("[data-ends]")) {
      const left = (Date.parse(el.getAttribute("data-ends")) - now) / 1000;
      el.textContent = left > 0 ? human(left) + " left" : (el.getAttribute("data-over") || "bake over");
    }
  }
  setInterval(tickClock, 1000);

  // -- routing --------------------------------------------------------------------------
  function route() {
    const parts = location.hash.replace(/^#\/?/, "").split("/");
    const view = parts[0] === "history" ? "history" : parts[0] === "cell" ? "cell" : "fleet";
    state.route = { view, arg: view === "cell" ? decodeURIComponent(parts.slice(1).join("/")) : null };
    $("view-fleet").hidden = view !== "fleet";
    $("view-history").hidden = view !== "history";
    $("view-cell").hidden = view !== "cell";
    $("nav-fleet").className = view === "fleet" ? "active" : "";
    $("nav-history").className = view === "history" ? "active" : "";
    if (view === "cell") { state.cell = null; clear($("cell")).append(h("p", { class: "muted", text: "loading…" })); }
    if (view === "fleet") layoutMap();
    refresh(null);
    if (view === "history") renderHistory();
  }
  window.addEventListener("hashchange", route);

  // -- fleet map: grouped wave → region → zone/group, virtualised rows -------------------
  const ROW_H = { h1: 30, h2: 22, h3: 20 };
  function tileMode(n) { return n <= 400 ? "big" : "small"; }

  function onFleet() {
    const F = state.fleet;
    if (!F) return;
    const services = Object.keys(F.services);
    const sel = $("f-service");
    if (!state.service || !services.includes(state.service)) state.service = services[0] || null;
    if (sel.options.length !== services.length || [...sel.options].some((o, i) => o.value !== services[i])) {
      clear(sel);
      for (const name of services) sel.append(h("option", { value: name, text: name }));
    }
    sel.value = state.service || "";
    // a stable colour per version, in version order
    const ordered = [...F.versions].sort(cmpVersion);
    state.versionClass = {};
    ordered.forEach((v, i) => { state.versionClass[v] = "v" + (i % 8); });
    const vsel = $("f-version");
    const current = vsel.value;
    clear(vsel).append(h("option", { value: "", text: "all" }));
    for (const v of ordered) vsel.append(h("option", { value: v, text: v }));
    vsel.value = ordered.includes(current) ? current : "";
    buildRows();
    if (probe.firstRender === null) {
      probe.firstRender = performance.now();
      performance.mark("fleet-rendered");
    }
    probe.renders++;
  }

  function cmpVersion(a, b) {
    const pa = String(a).split(/[.+-]/).map((x) => (isNaN(+x) ? x : +x));
    const pb = String(b).split(/[.+-]/).map((x) => (isNaN(+x) ? x : +x));
    for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
      if (pa[i] === undefined) return -1;
      if (pb[i] === undefined) return 1;
      if (pa[i] < pb[i]) return -1;
      if (pa[i] > pb[i]) return 1;
    }
    return 0;
  }

  function cellMatches(F, S, i, version, st, name) {
    if (name && !F.cells.name[i].includes(name)) return false;
    if (version && (S.version[i] < 0 || F.versions[S.version[i]] !== version)) return false;
    if (!st) return true;
    const fl = S.flags[i], f = F.flags;
    if (st === "drift") return (fl & (f.drift | f.terraform_drift)) !== 0;
    if (st === "alarm") return (fl & f.alarm) !== 0;
    if (st === "held") return (fl & (f.held | f.refused)) !== 0;
    if (st === "changing") return (fl & f.changing) !== 0;
    if (st === "rollback") return (fl & f.rollback) !== 0;
    return S.health[i] >= 0 && F.healths[S.health[i]] === st;
  }

  function buildRows() {
    const F = state.fleet;
    const S = F.services[state.service];
    const version = $("f-version").value, st = $("f-state").value, name = $("f-name").value.trim();
    const groups = new Map();
    let shown = 0;
    const n = F.cells.name.length;
    for (let i = 0; i < n; i++) {
      if (!S || !cellMatches(F, S, i, version, st, name)) continue;
      shown++;
      const w = F.cells.wave[i];
      const r = F.regions[F.cells.region[i]];
      const z = F.zones[F.cells.zone[i]] + " · " + F.groups[F.cells.group[i]];
      if (!groups.has(w)) groups.set(w, new Map());
      const byRegion = groups.get(w);
      if (!byRegion.has(r)) byRegion.set(r, new Map());
      const byZone = byRegion.get(r);
      if (!byZone.has(z)) byZone.set(z, []);
      byZone.get(z).push(i);
    }
    state.mode = tileMode(shown);
    const perRow = tilesPerRow();
    const rows = [];
    const waveOrder = [...groups.keys()].sort((a, b) => (a < 0) - (b < 0) || a - b);
    for (const w of waveOrder) {
      const byRegion = groups.get(w);
      let count = 0;
      for (const byZone of byRegion.values()) for (const cs of byZone.values()) count += cs.length;
      const label = w >= 0 ? "wave " + (w + 1) + "/" + F.waves.length + " · " + F.waves[w] : "in no wave";
      rows.push({ type: "h1", text: label + "  (" + count + " cells)" });
      for (const r of [...byRegion.keys()].sort()) {
        rows.push({ type: "h2", text: "region " + r });
        const byZone = byRegion.get(r);
        for (const z of [...byZone.keys()].sort()) {
          const cs = byZone.get(z);
          rows.push({ type: "h3", text: z + "  (" + cs.length + ")" });
          for (let k = 0; k < cs.length; k += perRow) rows.push({ type: "tiles", cells: cs.slice(k, k + perRow) });
        }
      }
    }
    const tileH = state.mode === "big" ? 38 : 14;
    state.rows = rows;
    state.offsets = [];
    let y = 0;
    for (const row of rows) { state.offsets.push(y); y += row.type === "tiles" ? tileH : ROW_H[row.type]; }
    state.total = y;
    $("map-inner").style.height = y + "px";
    $("f-count").textContent = shown + " of " + n + " cells";
    renderLegend(S);
    drawRows(true);
  }

  function tilesPerRow() {
    const width = Math.max(200, $("map").clientWidth - 50);
    return Math.max(1, Math.floor(width / (state.mode === "small" ? 17 : 154)));
  }

  let drawn = { from: -1, to: -1 };
  function drawRows(force) {
    const map = $("map"), inner = $("map-inner");
    const top = map.scrollTop, bottom = top + map.clientHeight;
    const offs = state.offsets;
    let lo = 0, hi = offs.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (offs[mid] < top - 200) lo = mid + 1; else hi = mid; }
    const from = Math.max(0, lo - 1);
    let to = from;
    while (to < offs.length && offs[to] < bottom + 200) to++;
    if (!force && from === drawn.from && to === drawn.to) return;
    drawn = { from, to };
    const frag = document.createDocumentFragment();
    for (let k = from; k < to; k++) frag.append(rowEl(state.rows[k], offs[k]));
    clear(inner).append(frag);
  }

  function rowEl(row, y) {
    const el = h("div", { class: "row " + row.type });
    el.style.top = y + "px";
    if (row.type !== "tiles") { el.textContent = row.text; return el; }
    for (const i of row.cells) el.append(tileEl(i));
    return el;
  }

  function tileEl(i) {
    const F = state.fleet, S = F.services[state.service];
    const name = F.cells.name[i];
    const v = S.version[i] >= 0 ? F.versions[S.version[i]] : null;
    const t = S.target[i] >= 0 ? F.versions[S.target[i]] : null;
    const health = S.health[i] >= 0 ? F.healths[S.health[i]] : "Missing";
    const fl = S.flags[i], f = F.flags;
    let cls = "tile " + state.mode + " " + health + " " + (v ? state.versionClass[v] || "" : "");
    if (fl & f.alarm) cls += " flag-alarm";
    if (fl & (f.drift | f.terraform_drift)) cls += " flag-drift";
    if (fl & f.rollback) cls += " flag-rollback";
    if (fl & f.changing) cls += " flag-changing";
    if (state.route.view === "cell" && state.route.arg === name) cls += " sel";
    const tip = name + " · " + (v || "nothing running") + (t && t !== v ? " → " + t : "") + " · " + health +
      (fl & f.alarm ? " · ALARM" : "") + (fl & f.drift ? " · drift" : "") + (fl & f.held ? " · held" : "") +
      (fl & f.rollback ? " · rolling back" : "");
    const el = h("a", { class: cls, href: "#/cell/" + encodeURIComponent(name), title: tip,
      "data-cell": name, "data-version": v || "", "data-health": health });
    if (state.mode === "big") {
      const marks = (fl & f.alarm ? "!" : "") + (fl & f.drift ? "~" : "") + (fl & f.rollback ? "↶" : fl & f.changing ? "→" : "");
      el.append(h("span", { class: "mark", text: marks }), name,
        h("span", { class: "v", text: (v || "–") + (t && t !== v ? " → " + t : "") }));
    }
    return el;
  }

  function renderLegend(S) {
    const F = state.fleet, legend = clear($("legend"));
    const counts = {};
    if (S) for (const vi of S.version) if (vi >= 0) counts[F.versions[vi]] = (counts[F.versions[vi]] || 0) + 1;
    for (const v of Object.keys(counts).sort(cmpVersion)) {
      legend.append(h("span", {}, h("span", { class: "sw " + state.versionClass[v] }), v + " (" + counts[v] + ")"));
    }
    for (const hname of ["Healthy", "Progressing", "Degraded", "Missing"]) {
      legend.append(h("span", {}, h("span", { class: "sw " + hname }), hname.toLowerCase()));
    }
    legend.append(h("span", { class: "muted", text: "! alarm  ~ drift  → changing  ↶ rolling back" }));
  }

  function layoutMap() { if (state.fleet) buildRows(); }
  $("map").addEventListener("scroll", () => drawRows(false), { passive: true });
  window.addEventListener("resize", () => { if (state.fleet && state.route.view === "fleet") buildRows(); });
  for (const id of ["f-version", "f-state"]) $(id).addEventListener("change", buildRows);
  $("f-name").addEventListener("input", buildRows);
  $("f-service").addEventListener("change", () => {
    state.service = $("f-service").value;
    buildRows();
    renderRollout();
    renderCanary();
    refresh(null);
  });

  // -- rollout of the selected service ---------------------------------------------------
  function renderRollout() {
    const box = clear($("rollout"));
    const R = state.rollout[state.service];
    if (!R) { box.append(h("h2", { text: "Rollout" }), h("p", { class: "muted", text: "loading…" })); return; }
    const target = R.waves.length ? R.waves[R.waves.length - 1].targetVersion : null;
    box.append(R.promotion ? h("h2", { text: "Rollout · " + R.promotion })
      : h("h2", {}, "Rollout · " + R.service + " ",
        h("span", { class: "muted", text: target ? "→ " + target : "" })));
    const stage = R.stage.label === "done" || R.stage.label === "rolling back" ? R.stage.label : "stage " + R.stage.label;
    box.append(h("div", { class: "stage" + (R.stage.rollingBack ? " bad" : ""), id: "stage", text: stage }));
    // the version split by fleet weight
    const bar = h("div", { class: "split", id: "split" });
    const legend = h("div", { class: "split-legend" });
    for (const part of R.split) {
      const seg = h("span", { class: "sw " + (state.versionClass[part.version] || ""), title: (part.version || "none") + ": " + part.weightPercent + "%" });
      seg.style.width = part.weightPercent + "%";
      bar.append(seg);
      legend.append(h("span", {}, h("span", { class: "sw " + (state.versionClass[part.version] || "") }),
        (part.version || "none") + " " + part.weightPercent + "% (" + part.cells + " cells)  "));
    }
    box.append(bar, legend);
    const list = h("ol", { class: "waves", id: "waves" });
    R.waves.forEach((w, i) => {
      const at = Object.entries(w.cellsAt).map(([v, c]) => c + "× " + v).join(", ");
      const detail = [];
      if (w.state === "baking" && w.bakeEndsAt) detail.push(h("span", { class: "warn", "data-ends": w.bakeEndsAt, id: "bake-" + w.wave }));
      if (w.reason) detail.push(h("span", { text: " " + w.reason }));
      if (w.failedVersion) detail.push(h("span", { class: "bad", text: " failed " + w.failedVersion + ": " + w.failureReason }));
      const li = h("li", { "data-wave": w.wave, "data-state": w.state },
        h("span", { class: "n", text: String(i + 1) }),
        h("span", {}, h("b", { text: w.wave }), " ", h("span", { class: "muted", text: w.weightPercent + "% · " + w.cells + " cells · " + at })),
        h("span", { class: "state " + w.state, text: w.state }),
        h("span", { class: "detail" }, ...detail));
      if (w.phases && w.phases.length) {
        li.append(h("ul", { class: "phases detail" }, w.phases.slice(0, 5).map((p) =>
          h("li", {}, h("span", { text: p.phase + " " }),
            p.endsAt ? h("span", { class: "warn", "data-ends": p.endsAt, "data-over": "next: " + p.next }) : h("span", { text: "next: " + p.next })))));
      }
      if (w.gates.length) {
        li.append(h("ul", { class: "gates detail" }, w.gates.slice(0, 3).map((g) =>
          h("li", { text: g.kind + ": " + g.reason + (g.steps > 1 ? " (" + g.steps + " steps)" : "") }))));
      }
      list.append(li);
    });
    box.append(list);
    tickClock();
    for (const hold of R.holds) box.append(h("p", { class: "warn", text: "held " + hold.version + " in " + hold.wave + ": " + hold.reason }));
    for (const r of R.refusals) box.append(h("p", { class: "bad", text: "refused " + r.cell + ": " + r.reason }));
    const migs = R.migrations.filter((m) => m.state !== "pending" || R.stage.label !== "done");
    if (migs.length) {
      box.append(h("h3", { text: "Migrations" }));
      const t = h("table", { class: "kv" });
      for (const m of migs) {
        t.append(h("tr", {}, h("th", { text: m.id }), h("td", { text: m.state }),
          h("td", { text: "expanded " + m.expanded + "/" + m.databases + " · contracted " + m.contracted + "/" + m.databases })));
      }
      box.append(t);
    }
  }

  // -- canary against baseline -----------------------------------------------------------
  function chart(metric, row) {
    const W = 230, H = 48, pad = 3;
    const all = row.canary.concat(row.baseline);
    const svg = s("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": metric + " canary vs baseline" });
    if (!all.length) return svg;
    const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
    const vmax = Math.max(1e-9, ...all.map((p) => p[1]));
    const x = (t) => pad + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - 2 * pad);
    const y = (v) => H - pad - (v / vmax) * (H - 2 * pad);
    for (const cohort of ["baseline", "canary"]) {
      const pts = row[cohort];
      if (!pts.length) continue;
      const d = pts.map((p, k) => (k ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join(" ");
      svg.append(s("path", { d, class: cohort }));
    }
    return svg;
  }

  function renderCanary() {
    const box = clear($("canary"));
    const C = state.canary[state.service];
    box.append(h("h2", { text: "Canary health" }));
    if (!C) { box.append(h("p", { class: "muted", text: "no data yet" })); return; }
    if (!C.canaryVersion) {
      box.append(h("p", { class: "muted", text: "No rollout in flight: every cell runs one version." }));
      return;
    }
    box.append(h("p", {}, h("b", { text: C.canaryVersion }), " on " + C.canaryCells + " cells vs baseline ",
      h("b", { text: C.baselineVersion || "–" }), " on " + C.baselineCells + " cells" +
      (C.sampled.baseline && C.sampled.baseline < C.baselineCells ? " (a sample of " + C.sampled.baseline + ")" : "") +
      ", last " + human(C.windowSeconds)));
    if (C.warning) box.append(h("p", { class: "flagged", id: "canary-warning", text: "⚠ the canary is near or past a threshold" }));
    if (C.error) box.append(h("p", { class: "bad", text: "metrics unavailable: " + C.error }));
    for (const metric of ["requests", "errors", "latency"]) {
      const row = C.metrics[metric];
      if (!row) continue;
      const ratio = row.ratio === null ? "" : " (" + row.ratio.toFixed(2) + "×)";
      box.append(h("div", { class: "metric", "data-metric": metric },
        h("b", { text: metric }),
        h("span", { class: "vals" + (row.flagged ? " flagged" : "") },
          "canary " + fmt(row.last.canary, metric) + " · baseline " + fmt(row.last.baseline, metric) + ratio + (row.flagged ? " ⚠" : "")),
        chart(metric, row)));
    }
    if (C.alarms.length) {
      const t = h("table", { class: "kv", id: "canary-alarms" });
      t.append(h("tr", {}, h("th", { text: "alarm" }), h("th", { text: "canary" }), h("th", { text: "baseline" }), h("th", { text: "threshold" })));
      for (const a of C.alarms) {
        const cell = (side) => h("td", { class: "level-" + side.level, text: fmt(side.value) + (side.level === "near" || side.level === "crossed" ? " ⚠ " + side.level : "") });
        t.append(h("tr", { "data-alarm": a.rule }, h("td", { text: a.rule }), cell(a.canary), cell(a.baseline),
          h("td", { text: a.comparison + " " + a.threshold })));
      }
      box.append(t);
    }
  }

  // -- history -------------------------------------------------------------------------
  function eventText(e) {
    if (e.kind === "rollback") {
      const why = e.cause === "alarm" ? "alarm '" + e.alarm + "' on " + e.cell + (e.value !== null ? " = " + e.value + " > " + e.threshold : "")
        : e.cause === "health" ? e.cell + " degraded: " + e.message : e.reason;
      return "automatic rollback of " + e.service + " " + e.version + " in " + e.groups.join(", ") + " — " + why;
    }
    if (e.kind === "revert") return "revert by " + e.author + ": " + e.subject;
    if (e.kind === "bump") return e.changes.map((c) => c.service + " " + (c.from || "∅") + " → " + c.to + " in " + c.groups.join(", ")).join("; ") + " (" + e.author + ")";
    if (e.kind === "promoted") return e.service + " " + e.version + " done in wave " + e.wave;
    if (e.kind === "rejected") return "revision " + short(e.revision) + " refused: " + (e.errors[0] || "");
    return e.subject;
  }
  function commitLink(e) {
    if (!e.commit) return null;
    const tpl = state.meta && state.meta.commitUrl;
    if (tpl) return h("a", { href: tpl.replace("{sha}", e.commit), target: "_blank", rel: "noopener noreferrer", class: "mono", text: short(e.commit) });
    return h("a", { href: "#/history/" + e.commit, class: "mono", title: e.commit, text: short(e.commit) });
  }
  function historyItem(e) {
    return h("li", { "data-kind": e.kind, "data-commit": e.commit || "" },
      h("span", { class: "kind " + e.kind, text: e.kind }), eventText(e), " ",
      h("span", { class: "muted", text: ago(e.at) + " " }), commitLink(e));
  }
  function renderHistory() {
    const H = state.history;
    const full = clear($("history"));
    const recent = clear($("recent"));
    recent.append(h("h2", {}, "Recent ", h("a", { href: "#/history", text: "all history" })));
    if (!H) return;
    if (H.error) { full.append(h("li", { class: "bad", text: H.error })); recent.append(h("p", { class: "bad", text: H.error })); }
    const list = h("ol", { class: "history", id: "recent-list" });
    for (const e of H.events.slice(0, 8)) list.append(historyItem(e));
    recent.append(list);
    for (const e of H.events) full.append(historyItem(e));
    const sel = location.hash.match(/^#\/history\/([0-9a-f]+)/);
    if (sel) for (const li of full.querySelectorAll("li[data-commit='" + sel[1] + "']")) li.classList.add("sel");
  }

  // -- one cell --------------------------------------------------------------------------
  function kv(pairs) {
    const t = h("table", { class: "kv" });
    for (const [k, v] of pairs) t.append(h("tr", {}, h("th", { text: k }), h("td", {}, v === null || v === undefined ? "–" : v)));
    return t;
  }
  function renderCell() {
    const box = clear($("cell"));
    const C = state.cell;
    if (!C) { box.append(h("p", { class: "bad", text: "no such cell" })); return; }
    box.append(h("h2", {}, "Cell " + C.cell + " ", h("a", { href: "#/", text: "back to the fleet" })));
    if (C.fault) box.append(h("p", { class: "bad", text: "held: " + C.fault }));
    box.append(kv([["wave", C.wave], ["group", C.group], ["region / zone", C.region + " / " + C.zone],
      ["weight", String(C.weight)], ["namespace", C.namespace],
      ["databases", C.databases.map((d) => d.name + " (" + d.dbname + " on " + d.host + ":" + d.port + ")").join(", ")]]));
    for (const [svc, S] of Object.entries(C.services)) {
      box.append(h("h3", { "data-service": svc }, "Service " + svc + " · ", h("span", { class: "tile-health", text: S.health }),
        " · " + (S.version || "–") + (S.target && S.target !== S.version ? " → " + S.target : "")));
      box.append(kv([["wave", S.wave + " (" + S.waveState + ")"], ["action", S.action], ["previous version", S.previousVersion],
        ["message", S.message || "–"], ["applied hash", S.appliedHash ? h("span", { class: "mono", text: S.appliedHash.slice(0, 16) }) : null]]));
      const objs = h("table", { class: "kv objects" });
      objs.append(h("tr", {}, h("th", { text: "object" }), h("th", { text: "namespace" }), h("th", { text: "health / drift" })));
      if (typeof S.objects === "string") objs.append(h("tr", {}, h("td", { text: S.objects })));
      else for (const o of S.objects) {
        const drift = S.drift.filter((d) => d.kind === o.kind && d.name === o.name);
        objs.append(h("tr", {}, h("td", { text: o.kind + "/" + o.name }), h("td", { text: o.namespace }),
          h("td", { class: drift.length ? "warn" : "", text: drift.length ? "drift: " + drift.map((d) => d.field + (d.manager ? " by " + d.manager : "")).join(", ") : S.health })));
      }
      box.append(objs);
      if (S.terraform) {
        box.append(h("h3", { text: "Terraform" }));
        const outs = Object.entries(S.terraform.outputs).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]);
        box.append(kv([["drifted", S.terraform.drifted ? "yes" : "no"], ["applied hash", S.terraform.appliedHash ? S.terraform.appliedHash.slice(0, 16) : null], ...outs]));
      }
      if (S.phase) box.append(h("p", { class: "warn", id: "phase-" + svc, text: S.phase.text }));
      if (S.steps.length) {
        box.append(h("h3", { text: "Planned steps" }));
        box.append(kv(S.steps.map((st) => [st.kind, (st.due ? "due" : st.gate.kind + ": " + st.gate.reason) + (st.toVersion ? " → " + st.toVersion : "")])));
      }
    }
    box.append(h("h3", { text: "Alarms" }));
    box.append(C.alarms.length ? kv(C.alarms.map((a) => [a.rule, (a.firing ? "FIRING " : "ok ") + fmt(a.value) + " (threshold " + a.threshold + ", " + a.samples + " samples)"])) : h("p", { class: "muted", text: "none evaluated" }));
    box.append(h("h3", { text: "Migration ledger" }));
    const ledger = [];
    for (const [db, migs] of Object.entries(C.ledger)) for (const [id, m] of Object.entries(migs)) ledger.push([db + " · " + id, m.phase + (m.at ? " at " + m.at : "")]);
    box.append(ledger.length ? kv(ledger) : h("p", { class: "muted", text: "nothing recorded" }));
    box.append(h("h3", { text: "Last steps" }));
    box.append(C.recent.length ? kv(C.recent.slice().reverse().map((r) => [r.at + " " + r.kind + " " + r.service, r.status + (r.to ? " → " + r.to : "") + ": " + r.detail]))
      : h("p", { class: "muted", text: "no step since the daemon started" }));
  }

  // -- start -----------------------------------------------------------------------------
  async function start() {
    let meta;
    try {
      meta = await getDoc("meta");
    } catch (e) {
      return; // the login form is shown
    }
    onMeta(meta);
    $("main").hidden = false;
    $("login").hidden = true;
    route();
    connect();
  }
  start();
})();
