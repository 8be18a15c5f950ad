// shield's approval page: held calls as cards, approved or denied with a passkey.
//
// Request data reaches the document only as text (textContent, or append() of a string):
// the server sends strings already escaped like `shield pending` (shim.server.cards), and
// nothing here parses them as markup. An approval is a WebAuthn assertion whose challenge is
// the SHA-256 of the decision's canonical JSON (shim.canon); the server relays it and each
// agent's shim verifies it. No framework, no build step.
"use strict";

(() => {
  const DECISION_TYPE = "shield.passkey-decision/1";
  const DECISION_TTL_MS = 300000;
  const GRANT_TYPE = "shield.grant/1";
  const GRANT_MS = 15 * 60 * 1000; // "Approve and grant": like calls for 15 minutes
  const ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"; // the shim's grant ids
  const NOTE_MS = 12000;
  // how a call ended is what the agent's shim told the server, not something the server saw
  const REPORTED = "How each call ended is what the agent's shim reported to the server; " +
    "the agent's own log is the record.";
  const state = {
    session: null,
    version: "",
    offset: 0, // server clock minus browser clock, for the countdowns
    cards: new Map(), // id -> {data, node}
    only: null, // the request id of /r/<id>
    live: false,
  };

  // ---------------------------------------------------------------- small helpers
  function el(tag, props, ...kids) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) node.append(kid);
    return node;
  }

  const main = () => document.getElementById("main");
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

  function show(...nodes) {
    main().replaceChildren(...nodes);
  }

  async function api(method, path, body) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && state.session) headers["X-Shield-CSRF"] = state.session.csrf;
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const err = new Error((data && data.error) || `HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  const b64u = {
    enc(buffer) {
      let text = "";
      for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
      return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
    dec(text) {
      const std = text.replace(/-/g, "+").replace(/_/g, "/");
      const bin = atob(std + "===".slice((std.length + 3) % 4));
      return Uint8Array.from(bin, (c) => c.charCodeAt(0));
    },
  };

  // Canonical JSON exactly as shim.canon.encode writes it: sorted keys, no spaces, ASCII
  // only (everything from U+007F up as a lowercase \uXXXX escape, astral characters as their
  // surrogate pair), integers only.
  function quote(text) {
    return JSON.stringify(text).replace(
      /[\u007f-\uffff]/g,
      (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
    );
  }

  function canon(value) {
    if (value === null) return "null";
    if (value === true) return "true";
    if (value === false) return "false";
    if (typeof value === "number") {
      if (!Number.isInteger(value)) throw new Error("canonical JSON holds no floats");
      return String(value);
    }
    if (typeof value === "string") return quote(value);
    if (Array.isArray(value)) return "[" + value.map(canon).join(",") + "]";
    const keys = Object.keys(value).sort();
    return "{" + keys.map((k) => quote(k) + ":" + canon(value[k])).join(",") + "}";
  }

  async function sha256(text) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    return new Uint8Array(digest);
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
    return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  }

  const serverNow = () => (Date.now() + state.offset) / 1000;

  function passkeyError(err) {
    if (err && err.name === "NotAllowedError") {
      return "your passkey did not sign (cancelled, timed out, or not this site's passkey)";
    }
    return (err && err.message) || String(err);
  }

  // ---------------------------------------------------------------- signing a decision
  async function decide(card, verdict, reason) {
    const now = Date.now();
    const body = {
      type: DECISION_TYPE,
      id: card.id,
      digest: card.digest,
      verdict,
      approver: state.session.approver,
      time: new Date(now).toISOString(),
      expires: new Date(now + DECISION_TTL_MS).toISOString(),
      reason,
      nonce: hex(crypto.getRandomValues(new Uint8Array(16))),
    };
    const decision = { ...body, ...(await passkeySign(body)) };
    await api("POST", `/api/v1/requests/${encodeURIComponent(card.id)}/decisions`, decision);
    return decision;
  }

  async function grantFor(card, reason) {
    // a grant over the card's scope (agent, tool, rule, pinned target), signed the same way:
    // the challenge is the SHA-256 of the grant's canonical JSON; the shims check it
    const now = Date.now();
    const pick = crypto.getRandomValues(new Uint8Array(7));
    const body = {
      type: GRANT_TYPE,
      id: "g" + Array.from(pick, (b) => ID_ALPHABET[b % ID_ALPHABET.length]).join(""),
      agent: card.grant_scope.agent,
      tool: card.grant_scope.tool,
      rules: card.grant_scope.rules,
      verbs: [],
      target: card.grant_scope.target,
      argv: [],
      not_before: new Date(now).toISOString(),
      expires: new Date(now + GRANT_MS).toISOString(),
      max_uses: null,
      reason: reason || `granted while approving ${card.id}`,
      approver: state.session.approver,
      time: new Date(now).toISOString(),
      nonce: hex(crypto.getRandomValues(new Uint8Array(16))),
    };
    const grant = { ...body, ...(await passkeySign(body)) };
    await api("POST", "/api/v1/statements", grant);
    return grant;
  }

  async function passkeySign(body) {
    const challenge = await sha256(canon(body));
    const credential = await navigator.credentials.get({
      publicKey: {
        challenge,
        rpId: state.session.rp_id,
        allowCredentials: state.session.credentials.map((id) => ({
          type: "public-key",
          id: b64u.dec(id),
        })),
        userVerification: "required",
        timeout: 120000,
      },
    });
    const r = credential.response;
    return {
      credential: b64u.enc(credential.rawId),
      authenticator_data: b64u.enc(r.authenticatorData),
      client_data_json: b64u.enc(r.clientDataJSON),
      signature: b64u.enc(r.signature),
    };
  }

  // ---------------------------------------------------------------- cards
  function rowsOf(rows) {
    // (label, lines): a row with an empty label continues the one before it
    const out = [];
    for (const [label, text] of rows) {
      if (label === "" && out.length) out[out.length - 1][1].push(text);
      else out.push([label, [text]]);
    }
    return out;
  }

  function rowList(rows) {
    const list = el("dl", { class: "rows" });
    for (const [label, lines] of rowsOf(rows)) {
      const mono = lines.length > 1 || !["why", "context", "agent", "cwd", "digest"].includes(label);
      list.append(el("dt", { text: label }), el("dd", { class: mono ? "mono" : "", text: lines.join("\n") }));
    }
    return list;
  }

  function times(card) {
    const now = serverNow();
    const left = card.expires - now;
    const held = `held ${duration(now - card.created)} ago`;
    return left > 0 ? `${held} · expires in ${duration(left)}` : `${held} · expired`;
  }

  function cardNode(card) {
    const node = el("article", { class: `card risk-${card.risk || "none"}`, id: `card-${card.id}` });
    const title = el(
      "header",
      {},
      el("a", { class: "rid", href: `/r/${encodeURIComponent(card.id)}`, text: card.id }),
      card.risk ? el("span", { class: `badge risk-${card.risk}`, text: card.risk }) : null,
      el("span", { class: "times", text: times(card) }),
    );
    node.append(title, el("pre", { class: "command", text: card.command }));
    if (card.warning) node.append(el("p", { class: "warning", text: card.warning }));
    node.append(rowList(card.rows));
    if (card.details.length) {
      node.append(el("details", {}, el("summary", { text: "What runs, as signed" }), rowList(card.details)));
    }
    node.append(el("p", { class: "needs" }));
    const reason = el("input", {
      type: "text",
      class: "reason",
      maxlength: "500",
      placeholder: card.require_reason ? "Reason (required)" : "Reason (required to deny)",
      "aria-label": `reason for ${card.id}`,
    });
    const approve = el("button", { type: "button", class: "approve", text: "Approve" });
    const deny = el("button", { type: "button", class: "deny", text: "Deny" });
    const result = el("p", { class: "result", role: "status" });
    approve.addEventListener("click", () => act(node, "approve"));
    deny.addEventListener("click", () => act(node, "deny"));
    if (card.status !== "pending") approve.disabled = true;
    node.append(el("div", { class: "actions" }, reason, el("div", { class: "buttons" }, approve, deny)));
    if (card.grant_scope) {
      const box = el("input", { type: "checkbox", class: "grant", "aria-label": `grant for ${card.id}` });
      node.append(el("label", { class: "grant" }, box, el("span", { text: ` ${card.grant_scope.text}` })));
    }
    node.append(result);
    fill(node, card);
    return node;
  }

  function fill(node, card) {
    node.querySelector(".times").textContent = times(card);
    const needs = node.querySelector(".needs");
    const parts = [];
    if (card.approvals > 1) parts.push(`Needs ${card.approvals} approvals.`);
    if (card.posted.length) parts.push(`Posted so far: ${card.posted.join(", ")}.`);
    if (card.refused.length) parts.push(`The agent's shim refused a decision: ${card.refused.join("; ")}.`);
    needs.textContent = parts.join(" ");
    needs.hidden = parts.length === 0;
  }

  async function act(node, verdict) {
    const entry = state.cards.get(node.id.slice(5));
    if (!entry) return;
    const card = entry.data;
    const reasonBox = node.querySelector(".reason");
    const result = node.querySelector(".result");
    const reason = reasonBox.value.trim();
    if (verdict === "deny" && !reason) {
      result.textContent = "Type a reason first: the agent is told why.";
      reasonBox.focus();
      return;
    }
    if (verdict === "approve" && card.require_reason && !reason) {
      result.textContent = "This request needs a reason with its approval.";
      reasonBox.focus();
      return;
    }
    const buttons = node.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    result.textContent = "Waiting for your passkey…";
    const granting = verdict === "approve" && node.querySelector("input.grant:checked") !== null;
    try {
      await decide(card, verdict, reason);
      result.textContent =
        verdict === "approve"
          ? "Approved: sent to the agent's shim, which checks your passkey's signature."
          : "Denied: sent to the agent's shim.";
      if (granting) {
        result.textContent = "Approved. Now your passkey signs the 15-minute grant…";
        try {
          const grant = await grantFor(card, reason);
          result.textContent = `Approved, and granted for 15 minutes (${grant.id}).`;
        } catch (err) {
          result.textContent = `Approved; the grant was not sent: ${passkeyError(err)}`;
        }
      }
    } catch (err) {
      result.textContent = `Not sent: ${passkeyError(err)}`;
    } finally {
      setTimeout(() => {
        buttons.forEach((b) => (b.disabled = b.classList.contains("approve") && card.status !== "pending"));
      }, 1500);
    }
  }

  function closedText(item) {
    const by = item.approver ? ` by ${item.approver}` : "";
    const via = item.channel ? ` (${item.channel})` : "";
    const why = item.reason ? `: ${item.reason}` : "";
    const words = {
      approved: `approved${by}${via}`,
      denied: `denied${by}${via}${why}`,
      expired: "expired without a decision",
      cancelled: `cancelled${why}`,
    };
    return `${item.id} ${words[item.status] || item.status}`;
  }

  function noteNode(id, text) {
    return el("p", { class: "note", id: `note-${id}`, role: "status", text });
  }

  function applyFeed(data) {
    const box = document.getElementById("cards");
    if (!box) return;
    const cards = data.cards.filter((c) => state.only === null || c.id === state.only);
    const ids = new Set(cards.map((c) => c.id));
    const closed = new Map(data.closed.map((c) => [c.id, c]));
    for (const [id, item] of closed) {
      const note = document.getElementById(`note-${id}`);
      if (note) note.textContent = closedText(item); // the shim's report came after the note
    }
    for (const [id, entry] of state.cards) {
      if (ids.has(id)) continue;
      const item = closed.get(id);
      const gone = entry.data.expires <= serverNow() ? `${id} expired without a decision` : `${id} is no longer pending`;
      const note = noteNode(id, item ? closedText(item) : gone);
      entry.node.replaceWith(note);
      state.cards.delete(id);
      if (state.only === null) setTimeout(() => note.remove(), NOTE_MS);
    }
    let previous = null;
    for (const card of cards) {
      let entry = state.cards.get(card.id);
      if (entry) {
        entry.data = card;
        fill(entry.node, card);
      } else {
        entry = { data: card, node: cardNode(card) };
        state.cards.set(card.id, entry);
        if (previous) previous.after(entry.node);
        else box.prepend(entry.node);
      }
      previous = entry.node;
    }
    if (state.only !== null && !ids.has(state.only) && !document.getElementById(`note-${state.only}`)) {
      const item = closed.get(state.only);
      box.replaceChildren(noteNode(state.only, item ? closedText(item) : `${state.only} is not pending`));
    }
    const empty = document.getElementById("empty");
    if (empty) empty.hidden = state.cards.size > 0 || state.only !== null;
  }

  function setLive(ok, why) {
    const line = document.getElementById("live");
    if (!line) return;
    line.textContent = ok ? "Live: new requests appear here." : `Reconnecting… (${why})`;
    line.classList.toggle("bad", !ok);
  }

  async function follow() {
    state.live = true;
    while (state.live) {
      try {
        const data = await api("GET", `/api/v1/page/feed?seen=${state.version}&wait=25`);
        state.offset = data.now * 1000 - Date.now();
        state.version = data.version;
        applyFeed(data);
        setLive(true);
      } catch (err) {
        if (err.status === 401) {
          location.reload();
          return;
        }
        setLive(false, err.message);
        await sleep(2000);
      }
    }
  }

  function tick() {
    for (const entry of state.cards.values()) fill(entry.node, entry.data);
  }

  // ---------------------------------------------------------------- views
  function pendingView(only) {
    state.only = only;
    const heading = only ? `Held request ${only}` : "Held calls waiting for you";
    show(
      el("h1", { text: heading }),
      el("p", { class: "muted", id: "live", text: "Connecting…" }),
      el("section", { id: "cards", "aria-live": "polite" }),
      el("p", { id: "empty", class: "muted", text: "Nothing is held right now.", hidden: "" }),
    );
    setInterval(tick, 1000);
    follow();
  }

  async function requestView(rid) {
    // a request that closed long ago, or never was, says so; a pending one follows the feed
    try {
      const data = await api("GET", `/api/v1/page/requests/${encodeURIComponent(rid)}`);
      if (data.card === null) {
        show(
          el("h1", { text: `Held request ${rid}` }),
          noteNode(rid, closedText(data.closed)),
          el("p", { class: "muted", id: "reported", text: REPORTED }),
        );
        return;
      }
    } catch (err) {
      show(el("h1", { text: `Held request ${rid}` }), el("p", { class: "warning", text: err.message }));
      return;
    }
    pendingView(rid);
  }

  async function historyView() {
    show(el("h1", { text: "Recent decisions" }), el("p", { class: "muted", text: "Loading…" }));
    const data = await api("GET", "/api/v1/page/history");
    const list = el("ol", { class: "history" });
    for (const item of data.items) {
      const when = item.closed ? new Date(item.closed * 1000).toLocaleString() : "";
      list.append(
        el(
          "li",
          { class: `status-${item.status}` },
          el("div", { class: "line" }, el("span", { class: `badge status-${item.status}`, text: item.status }), el("span", { class: "muted", text: when })),
          el("pre", { class: "command", text: item.command }),
          el("p", { text: `${closedText(item)} · agent ${item.agent}` }),
        ),
      );
    }
    show(
      el("h1", { text: "Recent decisions" }),
      el("p", { class: "muted", id: "reported", text: REPORTED }),
      data.items.length ? list : el("p", { class: "muted", text: "No decisions in the last week." }),
    );
  }

  async function signIn(button, message) {
    button.disabled = true;
    message.textContent = "Waiting for your passkey…";
    try {
      const options = await api("POST", "/api/v1/session/options", {});
      const credential = await navigator.credentials.get({
        publicKey: { ...options, challenge: b64u.dec(options.challenge), allowCredentials: [] },
      });
      const r = credential.response;
      const answer = {
        id: credential.id,
        rawId: b64u.enc(credential.rawId),
        type: credential.type,
        response: {
          clientDataJSON: b64u.enc(r.clientDataJSON),
          authenticatorData: b64u.enc(r.authenticatorData),
          signature: b64u.enc(r.signature),
        },
        clientExtensionResults: {},
      };
      if (r.userHandle) answer.response.userHandle = b64u.enc(r.userHandle);
      await api("POST", "/api/v1/session", answer);
      location.reload();
    } catch (err) {
      message.textContent = `Not signed in: ${passkeyError(err)}`;
      button.disabled = false;
    }
  }

  async function loginView() {
    const site = await api("GET", "/api/v1/page/site");
    const message = el("p", { class: "result", role: "status" });
    const button = el("button", { type: "button", class: "approve", id: "signin", text: "Sign in with a passkey" });
    button.addEventListener("click", () => signIn(button, message));
    if (!site.passkeys) {
      button.disabled = true;
      message.textContent = `Passkeys need this page on a host name over HTTPS (or http://localhost), not ${site.origin}. Ask your operator to start shield serve with --public-url.`;
    }
    show(
      el("h1", { text: "Approve held calls" }),
      el("p", { text: "Sign in with the passkey you enrolled. Your passkey also signs every approval: the agent's shim checks that signature itself." }),
      button,
      message,
    );
  }

  function download(name, text) {
    const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    return el("a", { href: url, download: name, class: "button", text: `Download ${name}` });
  }

  async function enroll(token, info, button, message) {
    button.disabled = true;
    message.textContent = "Waiting for your passkey…";
    try {
      const path = `/api/v1/enroll/${encodeURIComponent(token)}`;
      const options = await api("POST", `${path}/options`, {});
      const publicKey = {
        ...options,
        challenge: b64u.dec(options.challenge),
        user: { ...options.user, id: b64u.dec(options.user.id) },
        excludeCredentials: (options.excludeCredentials || []).map((c) => ({ ...c, id: b64u.dec(c.id) })),
      };
      const credential = await navigator.credentials.create({ publicKey });
      const r = credential.response;
      const done = await api("POST", path, {
        id: credential.id,
        rawId: b64u.enc(credential.rawId),
        type: credential.type,
        response: {
          clientDataJSON: b64u.enc(r.clientDataJSON),
          attestationObject: b64u.enc(r.attestationObject),
          transports: r.getTransports ? r.getTransports() : [],
        },
        clientExtensionResults: {},
      });
      const name = `${done.approver}.passkey`;
      show(
        el("h1", { text: `Passkey enrolled for ${done.approver}` }),
        el("p", { text: `Fingerprint ${done.fingerprint}. Your operator now adds this credential to each agent home; until then no shim accepts your approvals:` }),
        el("pre", { class: "command", text: `shield trust add ${name}` }),
        el("pre", { class: "file", id: "credential-file", text: done.file }),
        el("p", {}, download(name, done.file)),
        el("p", {}, el("a", { href: "/", text: "Sign in and see held calls" })),
      );
    } catch (err) {
      message.textContent = `Not enrolled: ${passkeyError(err)}`;
      button.disabled = false;
    }
  }

  async function enrollView(token) {
    let info;
    try {
      info = await api("GET", `/api/v1/enroll/${encodeURIComponent(token)}`);
    } catch (err) {
      show(el("h1", { text: "Enrollment link" }), el("p", { class: "warning", text: err.message }));
      return;
    }
    const message = el("p", { class: "result", role: "status" });
    const button = el("button", { type: "button", class: "approve", id: "enroll", text: "Create a passkey" });
    button.addEventListener("click", () => enroll(token, info, button, message));
    if (!info.ok) {
      button.disabled = true;
      message.textContent = `Passkeys need this page on a host name over HTTPS (or http://localhost), not ${info.origin}.`;
    }
    show(
      el("h1", { text: `Enroll a passkey for ${info.approver}` }),
      el("p", { text: `This one-time link registers a passkey (this device, a phone, or a security key) for ${info.approver} at ${info.origin}. It will ask you to verify yourself (fingerprint, face or PIN).` }),
      button,
      message,
    );
  }

  async function start() {
    const path = location.pathname;
    const enrolling = path.match(/^\/enroll\/([A-Za-z0-9_-]+)$/);
    if (enrolling) return enrollView(enrolling[1]);
    try {
      state.session = await api("GET", "/api/v1/session");
    } catch (err) {
      if (err.status === 401) return loginView();
      show(el("p", { class: "warning", text: `The server did not answer: ${err.message}` }));
      return;
    }
    document.getElementById("nav").hidden = false;
    document.getElementById("who").textContent = `signed in as ${state.session.approver}`;
    document.getElementById("signout").addEventListener("click", async () => {
      try {
        await api("DELETE", "/api/v1/session");
      } finally {
        location.assign("/");
      }
    });
    if (path === "/history") return historyView();
    const one = path.match(/^\/r\/([a-z0-9]+)$/);
    if (one) return requestView(one[1]);
    return pendingView(null);
  }

  window.shield = { canon }; // for tests that compare it with shim.canon
  document.addEventListener("DOMContentLoaded", () => {
    start().catch((err) => show(el("p", { class: "warning", text: String(err.message || err) })));
  });
})();
