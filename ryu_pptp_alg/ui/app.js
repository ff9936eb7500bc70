// The live page of ryu-pptp-alg: polls the REST API, renders it, tears sessions down.
// Values from the API are only ever inserted as text (textContent), never as HTML.
"use strict";

(() => {
  const POLL_MS = 1500;
  // Relative to /pptp/ui/: works behind a reverse proxy that adds a prefix too.
  const API = "../";

  const state = { gateways: [], sessions: [], sortKey: "client", sortDir: 1, filter: "" };
  let timer = null;

  // --- small helpers ---------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "title") node.title = value;
      else if (key.startsWith("data-")) node.dataset[key.slice(5)] = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function scaled(value, units, base) {
    let i = 0;
    while (Math.abs(value) >= base && i < units.length - 1) { value /= base; i += 1; }
    const text = i === 0 ? String(value) : value.toFixed(value < 10 ? 1 : 0);
    return [text, units[i]];
  }

  // 950, 1.2k, 34k, 3.4M
  function count(n) {
    const [text, unit] = scaled(Number(n) || 0, ["", "k", "M", "G", "T"], 1000);
    return text + unit;
  }

  // 512 B, 1.2 kB, 3.4 MB
  function bytes(n) {
    const [text, unit] = scaled(Number(n) || 0, ["B", "kB", "MB", "GB", "TB"], 1000);
    return `${text} ${unit}`;
  }

  // 45s, 3m 05s, 2h 03m, 1d 4h
  function age(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const pad = (v) => String(v).padStart(2, "0");
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor(s / 3600) % 24}h`;
  }

  function secondsSince(iso) {
    const t = Date.parse(iso);
    return Number.isNaN(t) ? 0 : (Date.now() - t) / 1000;
  }

  function hexDpid(dpid) {
    return "0x" + Number(dpid).toString(16);
  }

  function host(address) {
    return String(address).split(":")[0];
  }

  // Addresses sort by their numbers, not as text: 10.0.0.9 before 10.0.0.10.
  function addressKey(address) {
    const [ip, port] = String(address).split(":");
    const parts = ip.split(".").map((p) => Number(p) || 0);
    return parts.reduce((acc, p) => acc * 256 + p, 0) * 65536 + (Number(port) || 0);
  }

  function totals(session) {
    return session.calls.reduce((acc, c) => [acc[0] + c.packets, acc[1] + c.bytes], [0, 0]);
  }

  const SORT_KEYS = {
    client: (s) => addressKey(s.client),
    server: (s) => addressKey(s.server),
    public: (s) => addressKey(s.public),
    direction: (s) => s.direction,
    state: (s) => s.state,
    age: (s) => secondsSince(s.created),
    calls: (s) => s.calls.length,
    packets: (s) => totals(s)[0],
    bytes: (s) => totals(s)[1],
  };

  function setMessage(text, kind) {
    const node = document.getElementById("message");
    node.textContent = text;
    node.className = kind || "";
  }

  // --- rendering -------------------------------------------------------------------------

  function renderGateways() {
    const tbody = document.querySelector("#gateways tbody");
    const inUse = new Map(); // "dpid ip" -> sessions
    for (const s of state.sessions) {
      const key = `${s.dpid} ${host(s.public)}`;
      inUse.set(key, (inUse.get(key) || 0) + 1);
    }
    const rows = state.gateways.map((g) => {
      const addresses = g.public_addresses || [];
      const used = addresses.filter((a) => inUse.has(`${g.dpid} ${a}`));
      const chips = addresses.map((a) => {
        const n = inUse.get(`${g.dpid} ${a}`) || 0;
        return el("span", { class: n ? "chip used" : "chip",
                            title: `${n} session${n === 1 ? "" : "s"}` },
                  n ? `${a} (${n})` : a);
      });
      const since = g.connected && g.connected_since
        ? `since ${new Date(g.connected_since * 1000).toLocaleTimeString()}` : "";
      return el("tr", { "data-dpid": String(g.dpid) },
        el("td", {}, g.name || ""),
        el("td", { class: "addr", title: String(g.dpid) }, hexDpid(g.dpid)),
        el("td", {},
           el("span", { class: `badge ${g.connected ? "yes" : "no"}` },
              g.connected ? "connected" : "not connected"),
           " ", el("span", { class: "muted" }, since)),
        el("td", { class: "num" }, count(g.control_connections)),
        el("td", { class: "num" }, count(g.gre_pairs)),
        el("td", {}, el("strong", {}, `${used.length} / ${addresses.length}`), " ", ...chips));
    });
    tbody.replaceChildren(...rows);
  }

  function renderCall(call) {
    const ids = [call.client_call_id, call.public_call_id, call.server_call_id]
      .map((v) => (v === null || v === undefined ? "–" : String(v))).join(" · ");
    return el("div", { class: "call" },
      el("span", { class: "ids", title: "call IDs: client · public · server" }, ids),
      el("span", { class: `badge ${call.path}`, title: "path" }, call.path),
      el("span", { class: call.state }, call.state),
      el("span", { title: `${call.packets} packets` }, `${count(call.packets)} pkts`),
      el("span", { title: `${call.bytes} bytes` }, bytes(call.bytes)),
      el("span", { class: "muted", title: call.created }, age(secondsSince(call.created))));
  }

  // One button per session, kept across renders: a click that lands while the table is
  // re-rendered still hits the same element.
  const buttons = new Map();

  function teardownButton(id) {
    let button = buttons.get(id);
    if (!button) {
      button = el("button", { class: "teardown", type: "button", "data-id": id,
                              title: "End this control connection and its calls" },
                  "Tear down");
      button.addEventListener("click", () => {
        const session = state.sessions.find((s) => s.id === id);
        if (session) teardown(session, button);
      });
      buttons.set(id, button);
    }
    return button;
  }

  function renderSessions() {
    const filter = state.filter.trim();
    const key = SORT_KEYS[state.sortKey];
    const shown = state.sessions
      .filter((s) => !filter || s.client.includes(filter))
      .sort((a, b) => {
        const x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * state.sortDir ||
          String(a.id).localeCompare(String(b.id));
      });
    const live = new Set(state.sessions.map((s) => s.id));
    for (const id of buttons.keys()) if (!live.has(id)) buttons.delete(id);
    const rows = shown.map((s) => {
      const [packets, octets] = totals(s);
      const button = teardownButton(s.id);
      return el("tr", { "data-id": s.id },
        el("td", { class: "addr" }, s.client),
        el("td", { class: "addr" }, s.server),
        el("td", { class: "addr" }, s.public),
        el("td", {}, s.direction),
        el("td", {}, el("span", { class: s.state }, s.state)),
        el("td", { class: "num", title: s.created }, age(secondsSince(s.created))),
        el("td", {}, ...(s.calls.length ? s.calls.map(renderCall)
                                         : [el("span", { class: "muted" }, "no calls")])),
        el("td", { class: "num", title: String(packets) }, count(packets)),
        el("td", { class: "num", title: `${octets} bytes` }, bytes(octets)),
        el("td", {}, button));
    });
    document.querySelector("#sessions tbody").replaceChildren(...rows);
    document.getElementById("empty").hidden = rows.length > 0;
    const total = state.sessions.length;
    document.getElementById("count").textContent =
      shown.length === total ? `(${total})` : `(${shown.length} of ${total})`;
    for (const th of document.querySelectorAll("#sessions th[data-key]")) {
      if (th.dataset.key === state.sortKey) {
        th.setAttribute("aria-sort", state.sortDir > 0 ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    }
  }

  function render() {
    renderGateways();
    renderSessions();
  }

  // --- talking to the API ----------------------------------------------------------------

  async function getJson(path) {
    const response = await fetch(API + path, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`GET /pptp/${path}: HTTP ${response.status}`);
    return response.json();
  }

  async function poll() {
    clearTimeout(timer);
    const status = document.getElementById("status");
    try {
      const [gateways, sessions] = await Promise.all([getJson("gateways"),
                                                      getJson("sessions")]);
      state.gateways = gateways.gateways;
      state.sessions = sessions.sessions;
      render();
      status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      status.className = "";
    } catch (err) {
      status.textContent = `Cannot reach the controller (${err.message}); retrying`;
      status.className = "error";
    }
    timer = setTimeout(poll, POLL_MS);
  }

  async function teardown(session, button) {
    const calls = session.calls.length;
    const question = `Tear down session ${session.id}?\n\n` +
      `${session.client} → ${session.server} (public ${session.public}), ` +
      `${calls} call${calls === 1 ? "" : "s"}.\n` +
      "Its calls end and their flows are deleted.";
    if (!window.confirm(question)) return;
    button.disabled = true;
    try {
      const response = await fetch(`${API}sessions/${encodeURIComponent(session.id)}`,
                                   { method: "DELETE", headers: { Accept: "application/json" } });
      const body = await response.json().catch(() => ({}));
      if (response.ok && body.torn_down) {
        const t = body.torn_down;
        setMessage(`Torn down ${t.id} (client ${t.client}): ` +
                   `${t.calls.length} call${t.calls.length === 1 ? "" : "s"} ended, ` +
                   `${t.flows_deleted} flows deleted, ` +
                   `peers ${t.peers_told ? "told" : "not told"}.`, "ok");
      } else {
        setMessage(`Teardown of ${session.id} failed: HTTP ${response.status}` +
                   (body.error ? `: ${body.error}` : ""), "error");
        button.disabled = false;
      }
    } catch (err) {
      setMessage(`Teardown of ${session.id} failed: ${err.message}`, "error");
      button.disabled = false;
    }
    poll();
  }

  // --- wiring ----------------------------------------------------------------------------

  document.getElementById("filter").addEventListener("input", (event) => {
    state.filter = event.target.value;
    renderSessions();
  });
  for (const th of document.querySelectorAll("#sessions th[data-key]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.key;
      state.sortDir = key === state.sortKey ? -state.sortDir : 1;
      state.sortKey = key;
      renderSessions();
    });
  }
  poll();
})();
