// Data > Data Sources: a client of the public REST API (/v1), nothing else.
// API values are put in the page with textContent only (never innerHTML).
"use strict";

(() => {
  const KEY_STORE = "athos.console.apiKey";
  const POLL_MS = 1000;
  const ACTIVE = new Set(["queued", "running"]);
  const $ = (id) => document.getElementById(id);

  const PLATFORMS = { shopify: "Shopify", bigcommerce: "BigCommerce", api: "API" };
  const STATES = {
    not_granted: "Not connected",
    granted: "Connected",
    needs_reauthorization: "Needs re-authorization",
    revoked: "Revoked",
  };
  // Shopify callback outcomes (?shopify=failed&reason=…): our own wording, so a crafted
  // link cannot put arbitrary text on the page.
  const GRANT_FAILURES = {
    scopes_missing: "Shopify granted fewer permissions than asked. Click Grant Access again and approve every permission.",
    state_expired: "The approval took longer than 10 minutes. Click Grant Access again.",
    state_used: "This approval link was already used. Click Grant Access again.",
    code_rejected: "Shopify refused its one-time code (used or expired). Click Grant Access again.",
    shop_mismatch: "You approved in another shop than this data source's. Log into the right shop and click Grant Access again.",
    shopify_unavailable: "Shopify could not be reached. Try again in a moment.",
    token_exchange_failed: "Shopify did not hand over the access token. Click Grant Access again.",
    connector_gone: "The data source was deleted during the approval.",
  };
  const GRANT_FORGED = "The answer did not come from Shopify as expected, so nothing was changed. Start again from Grant Access.";

  const state = {
    connectors: [],
    current: null, // the connector shown in the connector window
    pollTimer: null,
    pollRun: null,
    retryRemote: new Set(), // connectors whose revocation Shopify has not heard of yet
    pending: null, // the Shopify callback result read from the URL
  };

  // --- small DOM helpers (text only) -------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function show(node, visible) { node.hidden = !visible; }

  function setText(node, text) { node.textContent = text || ""; show(node, Boolean(text)); }

  function flash(text, kind) {
    const box = $("flash");
    box.className = kind === "failure" ? "flash failure" : "flash";
    setText(box, text);
    if (text) hideAlert();
  }

  function alertError(text) { setText($("alert"), text); }
  function hideAlert() { setText($("alert"), ""); }

  function fieldError(inputId, errorId, text) {
    const input = $(inputId);
    const box = $(errorId);
    if (text) {
      if (box.id === "bc-token-error") $("bc-token-error-text").textContent = text;
      else box.textContent = text;
      box.hidden = false;
      input.setAttribute("aria-invalid", "true");
    } else {
      box.hidden = true;
      input.removeAttribute("aria-invalid");
    }
  }

  const number = new Intl.NumberFormat();
  const fmt = (n) => number.format(n || 0);
  const count = (n, noun) => `${fmt(n)} ${noun}${n === 1 ? "" : "s"}`;

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
  }

  function seconds(total) {
    if (total === null || total === undefined) return "";
    const s = Math.max(0, Math.round(total));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${s % 60} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function duration(run) {
    if (!run.started_at) return "";
    const end = run.finished_at ? new Date(run.finished_at) : new Date();
    return seconds((end - new Date(run.started_at)) / 1000);
  }

  function badge(value, labels) {
    return el("span", { class: `badge ${value}`, text: (labels && labels[value]) || value });
  }

  // --- the API ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || `The service answered ${status}.`);
      this.status = status;
      this.body = body || {};
    }
  }

  const getKey = () => sessionStorage.getItem(KEY_STORE);

  async function api(method, path, body) {
    const headers = { Accept: "application/json", Authorization: `Bearer ${getKey() || ""}` };
    const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, { detail: "The service could not be reached. Check the connection and try again." });
    }
    let data = null;
    const text = response.status === 204 ? "" : await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = { detail: `The service answered ${response.status}.` }; }
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // Errors any call may meet: a key revoked meanwhile signs out; the rest is shown.
  function report(error, target) {
    if (error.status === 401) {
      signOut("Your API key was not accepted (unknown or revoked): sign in again.", true);
      return;
    }
    const text = error.status === 403
      ? "This API key lacks the admin scope: sign in with an admin key."
      : error.message;
    if (target) setText(target, text);
    else alertError(text);
  }

  // --- sign-in -------------------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) {
      fieldError("api-key", "api-key-error", "Paste an admin API key.");
      $("api-key").focus();
      return;
    }
    sessionStorage.setItem(KEY_STORE, key);
    try {
      await api("GET", "/v1/connectors");
    } catch (error) {
      sessionStorage.removeItem(KEY_STORE);
      const text = error.status === 401
        ? "This key was not accepted: it is unknown or revoked."
        : error.status === 403 ? "This key lacks the admin scope." : error.message;
      fieldError("api-key", "api-key-error", text);
      $("api-key").focus();
      return;
    }
    $("api-key").value = "";
    fieldError("api-key", "api-key-error", "");
    await enter();
  }

  function signOut(message, isError) {
    sessionStorage.removeItem(KEY_STORE);
    stopPolling();
    state.connectors = [];
    state.current = null;
    $("sources-body").replaceChildren();
    $("sync-history-body").replaceChildren();
    show($("sources"), false);
    show($("connector"), false);
    show($("signout"), false);
    show($("signin"), true);
    hideAlert();
    if (isError) {
      flash("", null);
      alertError(message);
    } else {
      flash(message || "Signed out.", null);
    }
    $("api-key").focus();
  }

  async function enter() {
    show($("signin"), false);
    show($("signout"), true);
    const pending = state.pending;
    state.pending = null;
    await showList();
    if (pending && pending.connectorId) await openConnector(pending.connectorId);
    if (pending) showGrantResult(pending);
  }

  // --- the Shopify callback result ------------------------------------------------------------

  function readCallbackResult() {
    const params = new URLSearchParams(window.location.search);
    const outcome = params.get("shopify");
    if (!outcome) return null;
    // The result is read once; the address bar goes back to plain /console.
    window.history.replaceState(null, "", window.location.pathname);
    const id = params.get("connector_id");
    return {
      ok: outcome === "granted",
      reason: params.get("reason") || "",
      connectorId: id && /^[0-9a-f-]{36}$/i.test(id) ? id : null,
    };
  }

  function showGrantResult(result) {
    if (result.ok) {
      flash("Access granted: Athos can now read this shop's customers and orders. Start a sync below.");
    } else {
      flash(`Grant Access did not complete. ${GRANT_FAILURES[result.reason] || GRANT_FORGED}`, "failure");
    }
  }

  // --- the list --------------------------------------------------------------------------------

  async function showList(keepFlash) {
    if (!keepFlash) flash("");
    stopPolling();
    state.current = null;
    show($("connector"), false);
    show($("sources"), true);
    try {
      state.connectors = await api("GET", "/v1/connectors");
    } catch (error) {
      report(error);
      return;
    }
    const body = $("sources-body");
    body.replaceChildren();
    const rows = state.connectors.filter((c) => c.platform !== "api");
    show($("sources-empty"), rows.length === 0);
    show($("sources-table"), rows.length > 0);
    for (const connector of rows) body.append(listRow(connector));
    await Promise.all(rows.map((c) => fillLastSync(c)));
  }

  function listRow(c) {
    const lastSync = el("td", { "data-label": "Last sync", id: `last-sync-${c.id}`, text: "…" });
    const open = el("button", {
      type: "button",
      class: "secondary",
      "aria-label": `Open ${c.name}`,
      "data-connector": c.id,
      onclick: () => openConnector(c.id),
    }, "Open");
    return el("tr", { "data-connector-row": c.id },
      el("td", { "data-label": "Name", text: c.name }),
      el("td", { "data-label": "Platform", text: PLATFORMS[c.platform] || c.platform }),
      el("td", { "data-label": "Store", text: c.store || "—" }),
      el("td", { "data-label": "State" }, badge(c.state, STATES)),
      el("td", { "data-label": "Scopes granted", text: c.scopes.length ? c.scopes.join(", ") : "—" }),
      lastSync,
      el("td", { class: "row-actions" }, open),
    );
  }

  async function fillLastSync(c) {
    const cell = $(`last-sync-${c.id}`);
    if (!cell) return;
    let runs;
    try {
      runs = await api("GET", `/v1/connectors/${c.id}/syncs?limit=1`);
    } catch {
      cell.textContent = "—";
      return;
    }
    cell.replaceChildren();
    if (!runs.length) {
      cell.textContent = "Never";
      return;
    }
    const run = runs[0];
    const summary = el("div", {},
      badge(run.status),
      el("small", { text: when(run.finished_at || run.started_at || run.created_at) }),
      el("small", { text: `${count(run.customers, "customer")}, ${count(run.orders, "order")}` }),
    );
    if (run.last_error) summary.append(el("small", { text: `Error: ${run.last_error}` }));
    cell.append(summary);
  }

  async function addConnector(event) {
    event.preventDefault();
    hideAlert();
    fieldError("add-name", "add-name-error", "");
    fieldError("add-store", "add-store-error", "");
    setText($("add-error"), "");
    const platform = $("add-platform").value;
    const name = $("add-name").value.trim();
    const store = $("add-store").value.trim();
    let invalid = false;
    if (!name) {
      fieldError("add-name", "add-name-error", "Give the data source a name.");
      invalid = true;
    }
    if (platform === "shopify" && !store) {
      fieldError("add-store", "add-store-error", "Give the shop's name.myshopify.com domain.");
      invalid = true;
    }
    if (invalid) {
      (name ? $("add-store") : $("add-name")).focus();
      return;
    }
    const body = { platform, name };
    if (store) body.store = store;
    let created;
    try {
      created = await api("POST", "/v1/connectors", body);
    } catch (error) {
      if (error.status === 422 || error.status === 409) {
        const errors = error.body.errors || [];
        const storeError = errors.find((e) => e.field === "body.store");
        const nameError = errors.find((e) => e.field === "body.name");
        if (nameError) fieldError("add-name", "add-name-error", nameError.message);
        if (storeError || error.status === 409) {
          fieldError("add-store", "add-store-error", storeError ? storeError.message : error.message);
        }
        if (!storeError && !nameError && error.status !== 409) setText($("add-error"), error.message);
        (nameError ? $("add-name") : $("add-store")).focus();
        return;
      }
      report(error, $("add-error"));
      return;
    }
    $("add-form").reset();
    updateStoreField();
    await openConnector(created.id);
    flash(`Data source “${created.name}” added.`);
  }

  function updateStoreField() {
    const shopify = $("add-platform").value === "shopify";
    $("add-store-label").textContent = shopify ? "Shop domain" : "Store hash (optional)";
    $("add-store-hint").replaceChildren(
      ...(shopify
        ? ["Your shop's ", el("code", { text: "name.myshopify.com" }), " domain (not a custom domain)."]
        : ["From the API Path BigCommerce shows, e.g. ", el("code", { text: "abc123" }),
          " in …/stores/abc123/v3/. You may also give it with the token."]),
    );
    $("add-store").placeholder = shopify ? "my-shop.myshopify.com" : "abc123";
  }

  // --- one connector ----------------------------------------------------------------------------

  async function openConnector(id, keepFlash) {
    if (!keepFlash) flash("");
    stopPolling();
    hideAlert();
    let connector;
    try {
      connector = await api("GET", `/v1/connectors/${id}`);
    } catch (error) {
      report(error);
      return;
    }
    state.current = connector;
    show($("sources"), false);
    show($("connector"), true);
    for (const id of ["bc-api-path", "bc-token"]) $(id).value = "";
    fieldError("bc-api-path", "bc-api-path-error", "");
    fieldError("bc-token", "bc-token-error", "");
    $("bc-missing").replaceChildren();
    setText($("shopify-error"), "");
    setText($("sync-error"), "");
    show($("sync-progress"), false);
    delete $("sync-progress").dataset.run;
    delete $("sync-progress").dataset.status;
    renderConnector(connector);
    $("connector-title").focus();
    await loadRuns(true);
  }

  async function refreshConnector() {
    if (!state.current) return;
    try {
      state.current = await api("GET", `/v1/connectors/${state.current.id}`);
    } catch (error) {
      report(error);
      return;
    }
    renderConnector(state.current);
  }

  function stateHelp(c) {
    const shopify = c.platform === "shopify";
    const reason = c.last_error ? `: ${c.last_error.replace(/[.\s]+$/, "")}` : "";
    const note = c.last_error ? ` (${c.last_error.replace(/[.\s]+$/, "")})` : "";
    switch (c.state) {
      case "not_granted":
        return shopify
          ? "Not connected yet: click Grant Access below and approve on Shopify's page."
          : "Not connected yet: paste the API Path and API Token of a BigCommerce API account below.";
      case "needs_reauthorization":
        return shopify
          ? `Shopify refused the stored token${reason}. Syncs are stopped; your data is kept. Click Grant Access to authorize again.`
          : `BigCommerce refused the stored token${reason}. Syncs are stopped; your data is kept. Create a new API account with Customers: Read-only and Orders: Read-only and paste its token below.`;
      case "revoked":
        return shopify
          ? `Access is revoked${note}. The tokens and the data pulled from this shop were deleted. Click Grant Access to connect again.`
          : `The token was deleted${note}, and so was the data pulled from this store. Paste a new token below to connect again.`;
      default:
        return "";
    }
  }

  function renderConnector(c) {
    $("connector").dataset.connector = c.id;
    $("connector-title").textContent = c.name;
    const meta = $("connector-meta");
    meta.replaceChildren();
    const rows = [
      ["Platform", PLATFORMS[c.platform] || c.platform],
      ["Store", c.store || "—"],
      ["State", badge(c.state, STATES)],
      ["Scopes granted", c.scopes.length ? c.scopes.join(", ") : "—"],
      ["Store country", c.store_country || "—"],
    ];
    if (c.credential_hint) rows.push(["Stored token", c.credential_hint]);
    for (const [term, value] of rows) {
      meta.append(el("dt", { text: term }), el("dd", {}, value));
    }
    const help = stateHelp(c);
    const box = $("connector-state");
    box.className = c.state === "revoked" ? "state-box revoked" : "state-box";
    $("connector-state-text").textContent = help;
    show(box, Boolean(help));
    const warnings = $("connector-warnings");
    warnings.replaceChildren(...c.warnings.map((w) => el("li", { text: w })));
    show(warnings, c.warnings.length > 0);

    const shopify = c.platform === "shopify";
    show($("shopify-settings"), shopify);
    show($("bigcommerce-settings"), c.platform === "bigcommerce");
    if (shopify) {
      const granted = c.state === "granted";
      const revocable = granted || c.state === "needs_reauthorization" || state.retryRemote.has(c.id);
      show($("grant"), !granted);
      show($("history-field"), !granted);
      show($("revoke"), revocable);
    } else if (c.platform === "bigcommerce") {
      $("bc-api-path").placeholder = c.store
        ? `https://api.bigcommerce.com/stores/${c.store}/v3/`
        : "https://api.bigcommerce.com/stores/abc123/v3/";
      $("bc-token-hint").textContent = c.credential_hint
        ? `A token is saved (ends ${c.credential_hint}). Paste a new one to replace it.`
        : "The Access Token, shown once by BigCommerce.";
      $("bc-token").placeholder = c.credential_hint ? `Saved: ${c.credential_hint}` : "";
      const hasToken = Boolean(c.credential_hint) && c.state !== "revoked";
      show($("bc-check"), hasToken);
      show($("bc-disconnect"), hasToken);
    }
    const usable = c.state === "granted";
    $("sync-incremental").disabled = !usable;
    $("sync-full").disabled = !usable;
    setText($("sync-unavailable"), usable ? "" : "Syncs start once access is granted.");
  }

  // --- Shopify ----------------------------------------------------------------------------------

  async function grantAccess() {
    const c = state.current;
    setText($("shopify-error"), "");
    const body = $("all-history").checked ? { history_days: 36500 } : undefined;
    let grant;
    $("grant").disabled = true;
    try {
      grant = await api("POST", `/v1/connectors/${c.id}/shopify/grant`, body);
    } catch (error) {
      $("grant").disabled = false;
      report(error, $("shopify-error"));
      return;
    }
    const target = new URL(grant.authorize_url, window.location.href);
    if (target.protocol !== "https:" && target.protocol !== "http:") {
      $("grant").disabled = false;
      setText($("shopify-error"), "The service answered with an unexpected address.");
      return;
    }
    window.location.assign(target.href);
  }

  async function revokeAuthorization() {
    const c = state.current;
    const ok = await confirmDialog({
      title: "Revoke Authorization?",
      body: `Athos gives the customer-data permissions back to Shopify (by removing the Athos app from ${c.store}: Shopify takes back what Grant Access gave only with the app), deletes its tokens and stops syncing. It also deletes everything pulled from that store:`,
      items: [
        "the hashed e-mail addresses and phone numbers, and the customer IDs they point to;",
        "the sales data: orders and order lines;",
        "the sync history.",
      ],
      after: "This cannot be undone. Grant Access again to start over.",
      ok: "Revoke Authorization",
    });
    if (!ok) return;
    setText($("shopify-error"), "");
    let result;
    try {
      result = await api("POST", `/v1/connectors/${c.id}/shopify/revoke`);
    } catch (error) {
      report(error, $("shopify-error"));
      return;
    }
    const deleted = Object.values(result.purged || {}).reduce((a, b) => a + b, 0);
    if (result.retry_remote) {
      state.retryRemote.add(c.id);
      alertError(`The data pulled from ${c.store} is deleted (${fmt(deleted)} rows), but Shopify could not be told. Click Revoke Authorization again, or remove the app in Shopify admin (Settings > Apps).`);
    } else {
      state.retryRemote.delete(c.id);
      const atShopify = result.remote === "uninstalled"
        ? "the Athos app was removed from your Shopify store (Shopify takes its permissions back with it)"
        : "Shopify has the permissions back";
      flash(`Authorization revoked: ${atShopify}, and the tokens and everything pulled from ${c.store} were deleted (${fmt(deleted)} rows).`);
    }
    show($("sync-progress"), false);
    state.current = result.connector;
    renderConnector(result.connector);
    await loadRuns(false);
    $("grant").hidden ? $("revoke").focus() : $("grant").focus();
  }

  // --- BigCommerce ------------------------------------------------------------------------------

  async function saveBigCommerce(event) {
    event.preventDefault();
    const c = state.current;
    fieldError("bc-api-path", "bc-api-path-error", "");
    fieldError("bc-token", "bc-token-error", "");
    $("bc-missing").replaceChildren();
    hideAlert();
    const path = $("bc-api-path").value.trim();
    const token = $("bc-token").value.trim();
    if (!token) {
      fieldError("bc-token", "bc-token-error", "Paste the API account's Access Token.");
      $("bc-token").focus();
      return;
    }
    if (!path && !c.store) {
      fieldError("bc-api-path", "bc-api-path-error", "Paste the API Path BigCommerce shows (or the store hash).");
      $("bc-api-path").focus();
      return;
    }
    const body = { access_token: token };
    if (path) body[path.includes("/") || path.includes(".") ? "api_path" : "store_hash"] = path;
    $("bc-save").disabled = true;
    let saved;
    try {
      saved = await api("PUT", `/v1/connectors/${c.id}/bigcommerce/credentials`, body);
    } catch (error) {
      $("bc-save").disabled = false;
      showBigCommerceError(error);
      return;
    }
    $("bc-save").disabled = false;
    $("bc-token").value = "";
    $("bc-api-path").value = "";
    state.current = saved.connector;
    renderConnector(saved.connector);
    let text = `Token saved. Permissions found: ${saved.scopes.join(", ") || "none"}.`;
    if (saved.missing_optional_permissions.length) {
      text += ` Optional, for recommendations: ${saved.missing_optional_permissions.join(", ")}.`;
    }
    flash(text);
    await loadRuns(false);
  }

  function showBigCommerceError(error) {
    if (error.status === 401 || error.status === 403) {
      report(error);
      return;
    }
    const body = error.body || {};
    const errors = body.errors || [];
    const missing = body.missing_permissions || [];
    if (missing.length) {
      fieldError("bc-token", "bc-token-error",
        "This API account lacks permissions Athos needs. BigCommerce cannot change an existing account: create a new API account with these set, and paste its token. Nothing was saved.");
      $("bc-missing").replaceChildren(...missing.map((m) => el("li", { text: m })));
      $("bc-token").focus();
      return;
    }
    const pathError = errors.find((e) => e.field === "body.api_path" || e.field === "body.store_hash");
    const tokenError = errors.find((e) => e.field === "body.access_token");
    if (pathError || (error.status === 409 && !tokenError)) {
      fieldError("bc-api-path", "bc-api-path-error", pathError ? capitalize(pathError.message) : error.message);
    }
    if (tokenError) fieldError("bc-token", "bc-token-error", error.message);
    if (!pathError && !tokenError && error.status !== 409) {
      fieldError("bc-token", "bc-token-error", error.message);
    }
    (pathError ? $("bc-api-path") : $("bc-token")).focus();
  }

  function capitalize(text) { return text ? text[0].toUpperCase() + text.slice(1) + (/[.!]$/.test(text) ? "" : ".") : text; }

  async function checkBigCommerce() {
    const c = state.current;
    try {
      state.current = await api("POST", `/v1/connectors/${c.id}/bigcommerce/check`);
    } catch (error) {
      report(error);
      return;
    }
    renderConnector(state.current);
    if (state.current.state === "granted") flash("Connection works: BigCommerce accepts the token.");
    else alertError("The connection test failed: BigCommerce refused the token. What to do is shown below.");
  }

  async function disconnectBigCommerce() {
    const c = state.current;
    const ok = await confirmDialog({
      title: "Delete the token and the data?",
      body: `Athos forgets the API token of store ${c.store}, removes its webhooks and stops syncing. It also deletes everything pulled from that store:`,
      items: [
        "the hashed e-mail addresses and phone numbers, and the customer IDs they point to;",
        "the sales data: orders and order lines;",
        "the sync history.",
      ],
      after: "You can paste a token again later to start over.",
      ok: "Delete token and data",
    });
    if (!ok) return;
    try {
      state.current = await api("DELETE", `/v1/connectors/${c.id}/bigcommerce/credentials`);
    } catch (error) {
      report(error);
      return;
    }
    renderConnector(state.current);
    flash("The token and the data pulled from the store were deleted.");
    show($("sync-progress"), false);
    await loadRuns(false);
  }

  // --- syncs --------------------------------------------------------------------------------------

  async function loadRuns(follow) {
    const c = state.current;
    if (!c) return;
    let runs;
    try {
      runs = await api("GET", `/v1/connectors/${c.id}/syncs?limit=20`);
    } catch (error) {
      report(error, $("sync-error"));
      return;
    }
    if (!state.current || state.current.id !== c.id) return;
    const body = $("sync-history-body");
    body.replaceChildren(...runs.map(historyRow));
    show($("sync-history"), runs.length > 0);
    show($("sync-history-empty"), runs.length === 0);
    const active = runs.find((r) => ACTIVE.has(r.status));
    if (follow && active) {
      renderProgress(active);
      startPolling(active.id);
    }
  }

  function historyRow(run) {
    return el("tr", { "data-run": run.id },
      el("td", { "data-label": "Started", text: when(run.started_at || run.created_at) }),
      el("td", { "data-label": "Mode", text: run.mode }),
      el("td", { "data-label": "Status" }, badge(run.status)),
      el("td", { "data-label": "Customers", text: fmt(run.customers) }),
      el("td", { "data-label": "Orders", text: fmt(run.orders) }),
      el("td", { "data-label": "Skipped", text: fmt(run.skipped) }),
      el("td", { "data-label": "Duration", text: duration(run) || "—" }),
      el("td", { "data-label": "Error", text: run.last_error || "—" }),
    );
  }

  async function startSync(mode) {
    const c = state.current;
    setText($("sync-error"), "");
    hideAlert();
    let accepted;
    try {
      accepted = await api("POST", `/v1/connectors/${c.id}/syncs`, { mode });
    } catch (error) {
      if (error.status === 409 && error.body.run_id) {
        setText($("sync-error"), "A sync of this store is already queued or running: showing it.");
        startPolling(error.body.run_id);
        return;
      }
      report(error, $("sync-error"));
      return;
    }
    renderProgress({ id: accepted.id, status: accepted.status, mode, customers: 0, orders: 0 });
    startPolling(accepted.id);
    await loadRuns(false);
  }

  function startPolling(runId) {
    stopPolling();
    state.pollRun = runId;
    const tick = async () => {
      if (state.pollRun !== runId) return;
      let run;
      try {
        run = await api("GET", `/v1/syncs/${runId}`);
      } catch (error) {
        if (error.status === 401) { report(error); return; }
        setText($("sync-text"), `Progress unavailable: ${error.message} Retrying…`);
        state.pollTimer = setTimeout(tick, POLL_MS * 3);
        return;
      }
      if (state.pollRun !== runId) return;
      renderProgress(run);
      if (ACTIVE.has(run.status)) {
        state.pollTimer = setTimeout(tick, POLL_MS);
      } else {
        state.pollRun = null;
        await refreshConnector();
        await loadRuns(false);
      }
    };
    tick();
  }

  function stopPolling() {
    if (state.pollTimer) clearTimeout(state.pollTimer);
    state.pollTimer = null;
    state.pollRun = null;
  }

  function renderProgress(run) {
    show($("sync-progress"), true);
    const bar = $("sync-bar");
    const records = (run.customers || 0) + (run.orders || 0);
    const active = ACTIVE.has(run.status);
    show($("sync-cancel"), active);
    $("sync-progress").dataset.status = run.status;
    $("sync-progress").dataset.run = run.id;
    let text;
    if (active) {
      // A run reads customers, then orders; the estimate covers the streams begun so far,
      // so the bar shows the current stream and the time left is given for the last one.
      const streams = ["customers", "orders"];
      const step = streams.indexOf(run.stream);
      let done = null;
      let total = null;
      if (run.estimated_total && step === 0) {
        done = run.customers || 0;
        total = run.estimated_total;
      } else if (run.estimated_total && step === 1) {
        done = run.orders || 0;
        total = run.estimated_total - (run.customers || 0);
      }
      if (total && total > 0) {
        bar.max = 100;
        bar.value = Math.min(100, Math.round((done / total) * 100));
      } else {
        bar.removeAttribute("value"); // indeterminate
      }
      const parts = [run.status === "queued" ? "Queued: waiting for a worker" : `Running (${run.mode})`];
      if (step >= 0) {
        parts.push(total && total > 0
          ? `step ${step + 1} of 2: ${fmt(done)} of about ${fmt(total)} ${run.stream}`
          : `step ${step + 1} of 2: ${run.stream}`);
      }
      parts.push(`${count(records, "record")} read`);
      if (run.records_per_second) parts.push(`${fmt(run.records_per_second)} records/s`);
      if (step === 1 && run.eta_seconds !== null && run.eta_seconds !== undefined) {
        parts.push(`about ${seconds(run.eta_seconds)} left`);
      }
      if (run.last_error) parts.push(`last problem: ${run.last_error}`);
      text = parts.join(" · ");
    } else {
      bar.max = 100;
      bar.value = run.status === "succeeded" ? 100 : bar.value || 0;
      const counts = `${count(run.customers, "customer")}, ${count(run.orders, "order")}`;
      if (run.status === "succeeded") {
        text = `Sync succeeded: ${counts}${run.skipped ? `, ${fmt(run.skipped)} unreadable e-mails or phones skipped` : ""}${run.deleted ? `, ${fmt(run.deleted)} removed` : ""} in ${duration(run)}.`;
      } else if (run.status === "cancelled") {
        text = `Sync cancelled after ${counts}; what was read is kept.`;
      } else {
        text = `Sync failed after ${counts}.`;
        setText($("sync-error"), `The sync failed: ${run.last_error || "no reason given"}. ${failureAdvice(run)}`);
      }
    }
    $("sync-text").textContent = text;
    // Screen readers hear each change of phase and the outcome, not every tick.
    const phase = active ? `${run.status === "queued" ? "Sync queued" : "Sync running"}${run.stream ? `: reading ${run.stream}` : ""}.` : text;
    if ($("sync-announce").textContent !== phase) $("sync-announce").textContent = phase;
    const row = document.querySelector(`#sync-history-body tr[data-run="${CSS.escape(String(run.id))}"]`);
    if (row && run.created_at) row.replaceWith(historyRow(run));
  }

  function failureAdvice(run) {
    const c = state.current;
    if (c && c.state === "needs_reauthorization") return "The store refused the credentials: see above.";
    if (run.last_error && run.last_error.startsWith("gave up")) return "The store kept failing; try again later.";
    return "Try again; if it fails again, contact Athos support with the time of the run.";
  }

  async function cancelSync() {
    const runId = state.pollRun || $("sync-progress").dataset.run;
    if (!runId) return;
    try {
      const run = await api("POST", `/v1/syncs/${runId}/cancel`);
      stopPolling();
      renderProgress(run);
      await loadRuns(false);
    } catch (error) {
      report(error, $("sync-error"));
    }
  }

  // --- deleting a connector -----------------------------------------------------------------------

  async function deleteConnector() {
    const c = state.current;
    const ok = await confirmDialog({
      title: `Delete “${c.name}”?`,
      body: `The data source, its credentials and everything pulled from ${c.store || "the store"} are deleted:`,
      items: [
        "the hashed e-mail addresses and phone numbers, and the customer IDs they point to;",
        "the sales data: orders and order lines;",
        "the sync history.",
      ],
      after: "This cannot be undone.",
      ok: "Delete data source",
    });
    if (!ok) return;
    try {
      await api("DELETE", `/v1/connectors/${c.id}`);
    } catch (error) {
      report(error);
      return;
    }
    await showList();
    flash(`Data source “${c.name}” deleted.`);
    $("sources-title").focus();
  }

  // --- the confirmation dialog ------------------------------------------------------------------

  function confirmDialog({ title, body, items, after, ok }) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-body").textContent = body;
    $("confirm-list").replaceChildren(...items.map((i) => el("li", { text: i })));
    $("confirm-ok").textContent = ok;
    let note = dialog.querySelector(".after");
    if (!note) {
      note = el("p", { class: "after" });
      $("confirm-list").after(note);
    }
    note.textContent = after || "";
    dialog.returnValue = "";
    const opener = document.activeElement;
    dialog.showModal();
    $("confirm-cancel").focus();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        resolve(dialog.returnValue === "ok");
        if (opener && opener.focus) opener.focus();
      }, { once: true });
    });
  }

  // --- start --------------------------------------------------------------------------------------

  function start() {
    $("signin-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", () => signOut("Signed out: the key is forgotten by this tab."));
    $("add-form").addEventListener("submit", addConnector);
    $("add-platform").addEventListener("change", updateStoreField);
    $("back").addEventListener("click", async () => {
      const id = state.current && state.current.id;
      await showList();
      const button = id && document.querySelector(`button[data-connector="${CSS.escape(id)}"]`);
      (button || $("sources-title")).focus();
    });
    $("grant").addEventListener("click", grantAccess);
    $("revoke").addEventListener("click", revokeAuthorization);
    $("bc-form").addEventListener("submit", saveBigCommerce);
    $("bc-check").addEventListener("click", checkBigCommerce);
    $("bc-disconnect").addEventListener("click", disconnectBigCommerce);
    $("sync-incremental").addEventListener("click", () => startSync("incremental"));
    $("sync-full").addEventListener("click", () => startSync("full"));
    $("sync-cancel").addEventListener("click", cancelSync);
    $("delete-connector").addEventListener("click", deleteConnector);
    $("sources-title").setAttribute("tabindex", "-1");
    updateStoreField();

    state.pending = readCallbackResult();
    if (getKey()) {
      enter();
    } else {
      show($("signin"), true);
      if (state.pending) {
        flash("Sign in to see the result of Grant Access.", null);
      }
      $("api-key").focus();
    }
  }

  start();
})();
