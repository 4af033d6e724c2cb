// autokey seller console. Plain ES module, no dependencies, talks only to this origin's JSON API.
// Never renders key plaintext: the seller API does not return it, and pasted keys are cleared
// from the textarea as soon as the upload is accepted.

const TOKEN_KEY = "autokey.console.token";
const POOL_KEY = "autokey.console.pool";
const KEYS_PAGE = 25;
const SALES_PAGE = 50;
const AUDIT_SHOWN = 100;
const MAX_PAGE = 500;
const MAX_JSON_KEYS = 10000;

const params = new URLSearchParams(location.search);
const REFRESH_MS = Math.max(1, Number(params.get("refresh")) || 5) * 1000;

const LINE_REASONS = {
  duplicate: "Duplicate: already in one of the pools, or earlier in this upload",
  invalid_length: "Invalid length: a key has 5 to 256 characters",
  invalid_characters: "Invalid characters: no spaces or control characters inside a key",
};
// Problems and field errors carry stable codes; the console shows sentences. Unknown codes
// fall back to the problem's title, which the server writes for people.
const PROBLEM_MESSAGES = {
  unauthenticated: "The server refused this token (401): it is unknown, revoked or mistyped.",
  forbidden: "This token may not do that: use a token created with --role seller.",
  not_found: "That no longer exists. Refresh the page.",
  too_many_keys: "Too many keys in one paste.",
  key_not_available: "That key is reserved or delivered and cannot be invalidated.",
  illegal_transition: "The offer cannot move to that status.",
  conflict: "Someone changed this at the same time. Try again.",
  store_unavailable: "The database is unavailable. Try again in a moment.",
  payload_too_large: "The upload is too large.",
};
const FIELD_LABELS = {
  name: "The pool name",
  title: "The title",
  "price.amount": "The price",
  "price.currency": "The currency",
  keyPoolId: "The key pool",
  lowStockThreshold: "The low-stock threshold",
  url: "The endpoint URL",
  eventTypes: "The event selection",
  status: "The status",
  body: "The request",
};
const FIELD_REASONS = {
  required: "is required",
  invalid_type: "has the wrong type",
  unknown_field: "is not a known field",
  invalid_value: "is not valid",
  invalid_length: "is too short or too long",
  not_a_decimal: "must be a number such as 9.99",
  too_large: "is too large",
  too_many_decimals: "has more decimals than the currency allows (EUR 2, JPY 0, KWD 3)",
  invalid_currency: "must be a 3-letter currency code such as EUR",
  control_character: "contains a control character",
  bidi_control: "contains a bidirectional control character",
  unpaired_surrogate: "contains an invalid character",
  required_for_auto_key: "is required for an AUTO_KEY offer",
  unknown_key_pool: "is not one of your pools",
  unknown_value: "has an unknown value",
  out_of_range: "is out of range",
  malformed_json: "is not valid JSON",
  invalid_shape: "has the wrong shape",
  https_required: "must use https",
  not_http_url: "must be an http or https address",
  credentials_in_url: "must not contain a user name or password",
  private_target: "points to a private or local address, which autokey does not call",
  too_many_endpoints: "cannot be added: you have the maximum number of endpoints",
  unknown_event_type: "names an event autokey does not send",
};
const EVENT_TYPES = [
  "order.fulfilled",
  "upload.completed",
  "offer.low_stock",
  "offer.out_of_stock",
  "offer.back_in_stock",
];
const STOCK_LEVELS = {
  in_stock: ["In stock", "ok"],
  low: ["Low stock", "warn"],
  out_of_stock: ["Out of stock", "bad"],
};

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  pools: [],
  offers: [],
  selectedPoolId: sessionStorage.getItem(POOL_KEY),
  keys: { poolId: null, status: "", items: [], nextCursor: null, generation: 0 },
  audit: [],
  sales: [],
  hooks: [],
  deliveriesFor: null,
  refreshing: null,
  timer: null,
};

// ---- HTTP -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function problemFrom(status, text) {
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object" && typeof body.title === "string") return body;
  } catch {
    // Not JSON (a proxy's HTML error page, say): fall through to a generic problem.
  }
  return { title: `The server answered ${status}`, status };
}

const NETWORK_PROBLEM = {
  title: "Cannot reach autokey",
  detail: "The request did not complete. Check that the server is running and try again.",
};

async function request(method, path, body, accept = "application/json") {
  const headers = { Accept: accept, Authorization: `Bearer ${state.token}` };
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, NETWORK_PROBLEM);
  }
  if (!response.ok) {
    throw new ApiError(response.status, problemFrom(response.status, await response.text()));
  }
  return response;
}

async function api(method, path, body) {
  const text = await (await request(method, path, body)).text();
  return text ? JSON.parse(text) : null;
}

function uploadFile(poolId, file, onProgress) {
  // XMLHttpRequest because fetch() has no upload progress events.
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/key-pools/${encodeURIComponent(poolId)}/keys/upload`);
    xhr.setRequestHeader("Authorization", `Bearer ${state.token}`);
    xhr.setRequestHeader("Content-Type", "text/plain");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.upload.addEventListener("load", () => onProgress(file.size, file.size, true));
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(JSON.parse(xhr.responseText));
      } else {
        reject(new ApiError(xhr.status, problemFrom(xhr.status, xhr.responseText)));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, NETWORK_PROBLEM)));
    xhr.addEventListener("abort", () => reject(new ApiError(0, NETWORK_PROBLEM)));
    xhr.send(file);
  });
}

async function allPages(path) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < 20; page += 1) {
    const query = new URLSearchParams({ limit: String(MAX_PAGE) });
    if (cursor) query.set("cursor", cursor);
    const body = await api("GET", `${path}?${query}`);
    items.push(...body.items);
    cursor = body.nextCursor;
    if (!cursor) break;
  }
  return items;
}

// ---- DOM helpers ----------------------------------------------------------------------

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

const lastRendered = new WeakMap();

// Re-render only when the data changed, and keep keyboard focus on the same logical control
// (data-focus) so the periodic refresh never yanks focus away from the user.
function renderInto(container, signature, build) {
  if (lastRendered.get(container) === signature) return;
  lastRendered.set(container, signature);
  const active = document.activeElement;
  const focusKey = active && container.contains(active) ? active.dataset.focus : undefined;
  container.replaceChildren(...build());
  if (focusKey) {
    const again = container.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`);
    if (again) again.focus();
  }
}

function show(el, visible) {
  el.hidden = !visible;
}

const numbers = new Intl.NumberFormat();
const dates = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
const times = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
const fmt = (n) => numbers.format(n);
const when = (iso) => (iso ? dates.format(new Date(iso)) : "—");
// UUIDv7s start with a timestamp, so ids made together share a prefix: show the random tail.
const shortId = (id) => (id ? `…${id.slice(-8)}` : "—");

// "price.amount" + "not_a_decimal" -> "The price must be a number such as 9.99."
function fieldSentence(item) {
  const field = String(item.field || "").replace(/^body\./, "");
  const camel = field.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
  const label = FIELD_LABELS[camel] || (camel ? `The field “${camel}”` : "The request");
  return `${label} ${FIELD_REASONS[item.code] || "is not valid"}.`;
}

function showProblem(el, error) {
  const problem = error instanceof ApiError ? error.problem : { title: String(error.message || error) };
  const errors = Array.isArray(problem.errors) ? problem.errors : [];
  const headline =
    problem.code === "invalid_input" && errors.length
      ? "Please correct this:"
      : PROBLEM_MESSAGES[problem.code] || problem.title || "Something went wrong.";
  const parts = [h("strong", {}, headline)];
  if (problem.detail) parts.push(" ", h("span", {}, problem.detail));
  if (typeof problem.limit === "number") {
    parts.push(" ", h("span", {}, `The limit is ${fmt(problem.limit)}.`));
  }
  if (errors.length) parts.push(h("ul", {}, errors.map((item) => h("li", {}, fieldSentence(item)))));
  el.replaceChildren(...parts);
  show(el, true);
}

function clearProblem(el) {
  el.replaceChildren();
  show(el, false);
}

let announceTimer = null;
function announce(message) {
  const el = $("announcer");
  el.textContent = message;
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    el.textContent = "";
  }, 6000);
}

async function busy(form, task) {
  const buttons = form.querySelectorAll("button, input, select, textarea");
  form.setAttribute("aria-busy", "true");
  for (const b of buttons) if (b.tagName === "BUTTON") b.disabled = true;
  try {
    return await task();
  } finally {
    form.removeAttribute("aria-busy");
    for (const b of buttons) if (b.tagName === "BUTTON") b.disabled = false;
  }
}

// Every action funnels errors through here: a rejected token signs the user out.
function handleError(el, error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut(error);
    return;
  }
  showProblem(el, error);
}

// ---- Session --------------------------------------------------------------------------

function showSignIn() {
  show($("workspace"), false);
  show($("session"), false);
  show($("signin"), true);
  stopPolling();
}

function showWorkspace() {
  show($("signin"), false);
  show($("workspace"), true);
  show($("session"), true);
  startPolling();
}

function signOut(error) {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  state.pools = [];
  state.offers = [];
  state.sales = [];
  state.hooks = [];
  state.audit = [];
  state.deliveriesFor = null;
  hideSecret();
  state.keys = { poolId: null, status: "", items: [], nextCursor: null, generation: state.keys.generation + 1 };
  showSignIn();
  if (error) showProblem($("token-problem"), error);
  else clearProblem($("token-problem"));
  $("token-input").focus();
}

async function onTokenSubmit(event) {
  event.preventDefault();
  const input = $("token-input");
  const token = input.value.trim();
  const problemEl = $("token-problem");
  if (!token) {
    showProblem(problemEl, { message: "Paste a seller token first." });
    input.focus();
    return;
  }
  state.token = token;
  await busy($("token-form"), async () => {
    try {
      await api("GET", "/key-pools?limit=1");
    } catch (error) {
      state.token = null;
      showProblem(problemEl, error);
      input.focus();
      return;
    }
    input.value = "";
    sessionStorage.setItem(TOKEN_KEY, token);
    clearProblem(problemEl);
    showWorkspace();
    await refreshAll();
    $("pool-name").focus();
    announce("Signed in.");
  });
}

// ---- Refresh --------------------------------------------------------------------------

function startPolling() {
  stopPolling();
  state.timer = setInterval(() => {
    if (!document.hidden && state.token) refreshAll({ quiet: true });
  }, REFRESH_MS);
}

function stopPolling() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

async function refreshAll({ quiet = false } = {}) {
  if (state.refreshing) {
    if (quiet) return state.refreshing;
    await state.refreshing.catch(() => {});
  }
  state.refreshing = (async () => {
    try {
      await loadPools();
      await Promise.all([loadOffers(), loadKeys(), loadAudit(), loadSales(), loadHooks()]);
      $("refresh-state").textContent = `Updated ${times.format(new Date())}`;
      $("refresh-state").classList.remove("stale");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        signOut(error);
        return;
      }
      $("refresh-state").textContent = `Refresh failed: ${error.message}`;
      $("refresh-state").classList.add("stale");
    } finally {
      state.refreshing = null;
    }
  })();
  return state.refreshing;
}

// ---- Pools ----------------------------------------------------------------------------

// A pool is low when one of its offers is: the thresholds live on offers, server-side.
function poolLevel(pool) {
  if (pool.availableKeys === 0) return "out_of_stock";
  const low = state.offers.some((o) => o.keyPoolId === pool.id && o.stockLevel === "low");
  return low ? "low" : "in_stock";
}

function lowThreshold(pool) {
  const limits = state.offers
    .filter((o) => o.keyPoolId === pool.id && o.stockLevel === "low")
    .map((o) => o.lowStockThreshold);
  return Math.max(...limits);
}

function selectedPool() {
  return state.pools.find((p) => p.id === state.selectedPoolId) || null;
}

async function loadPools() {
  try {
    state.pools = await allPages("/key-pools");
    clearProblem($("pools-problem"));
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    showProblem($("pools-problem"), error);
    return;
  }
  if (!selectedPool()) {
    const first = state.pools[0];
    selectPool(first ? first.id : null, { load: false });
  }
  renderPools();
  renderPoolDetail();
  renderPoolOptions();
}

function renderPools() {
  const body = $("pools-body");
  show($("pools-empty"), state.pools.length === 0);
  show($("pools-table").closest(".table-wrap"), state.pools.length > 0);
  const signature = JSON.stringify([state.pools, state.selectedPoolId, state.pools.map(poolLevel)]);
  renderInto(body, signature, () =>
    state.pools.map((pool) => {
      const selected = pool.id === state.selectedPoolId;
      const [label, tone] = STOCK_LEVELS[poolLevel(pool)];
      return h(
        "tr",
        { class: selected ? "selected" : null, dataset: { poolId: pool.id } },
        h(
          "th",
          { scope: "row" },
          h(
            "button",
            {
              type: "button",
              class: "link",
              "aria-current": selected ? "true" : null,
              dataset: { action: "select-pool", id: pool.id, focus: `pool:${pool.id}` },
            },
            pool.name || "Unnamed pool",
          ),
        ),
        h("td", { class: "num" }, fmt(pool.totalKeys)),
        h("td", { class: "num strong" }, fmt(pool.availableKeys)),
        h("td", { class: "num opt" }, fmt(pool.reservedKeys)),
        h("td", { class: "num opt" }, fmt(pool.deliveredKeys)),
        h("td", { class: "num opt" }, fmt(pool.invalidKeys)),
        h("td", {}, h("span", { class: `badge ${tone}` }, label)),
      );
    }),
  );
}

function renderPoolDetail() {
  const pool = selectedPool();
  show($("pool-detail"), Boolean(pool));
  if (!pool) return;
  $("pool-title").textContent = pool.name || "Unnamed pool";
  $("pool-id").textContent = pool.id;
  for (const dd of $("pool-counts").querySelectorAll("dd[data-count]")) {
    dd.textContent = fmt(pool[dd.dataset.count]);
  }
  const out = pool.availableKeys === 0;
  const low = poolLevel(pool) === "low";
  show($("out-of-stock"), out);
  show($("low-stock-hint"), low);
  $("low-stock-text").textContent = low
    ? `Only ${fmt(pool.availableKeys)} key${pool.availableKeys === 1 ? "" : "s"} left (an offer's threshold is ${fmt(lowThreshold(pool))}).`
    : "";
  $("pool-counts").classList.toggle("is-out", out);
}

function renderPoolOptions() {
  const select = $("offer-pool");
  const current = select.value || state.selectedPoolId || "";
  const signature = JSON.stringify(state.pools.map((p) => [p.id, p.name]));
  if (lastRendered.get(select) !== signature) {
    lastRendered.set(select, signature);
    select.replaceChildren(
      ...state.pools.map((p) => h("option", { value: p.id }, p.name || `Pool ${shortId(p.id)}`)),
    );
  }
  if (state.pools.some((p) => p.id === current)) select.value = current;
}

function selectPool(poolId, { load = true } = {}) {
  const changed = poolId !== state.selectedPoolId;
  state.selectedPoolId = poolId;
  if (poolId) sessionStorage.setItem(POOL_KEY, poolId);
  else sessionStorage.removeItem(POOL_KEY);
  if (changed) {
    state.audit = [];
    lastRendered.delete($("audit-body"));
    show($("upload-report"), false);
    clearProblem($("upload-problem"));
    clearProblem($("keys-problem"));
    state.keys = { poolId, status: $("key-status").value, items: [], nextCursor: null, generation: state.keys.generation + 1 };
    lastRendered.delete($("keys-body"));
    $("keys-body").replaceChildren();
    if (poolId && state.pools.some((p) => p.id === poolId)) $("offer-pool").value = poolId;
  }
  renderPools();
  renderPoolDetail();
  if (load && changed) {
    loadKeys().catch((error) => handleError($("keys-problem"), error));
    loadAudit().catch((error) => handleError($("audit-problem"), error));
  }
}

async function onCreatePool(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const problemEl = $("pool-problem");
  const name = $("pool-name").value.trim();
  if (!name) {
    showProblem(problemEl, { message: "Give the pool a name, for example “Steam keys · EU”." });
    $("pool-name").focus();
    return;
  }
  await busy(form, async () => {
    try {
      const pool = await api("POST", "/key-pools", { name });
      $("pool-name").value = "";
      clearProblem(problemEl);
      state.pools.push(pool);
      selectPool(pool.id);
      await refreshAll();
      announce(`Pool “${pool.name}” created.`);
    } catch (error) {
      handleError(problemEl, error);
    }
  });
}

// ---- Upload ---------------------------------------------------------------------------

function renderReport(report, source) {
  const section = $("upload-report");
  for (const el of section.querySelectorAll("[data-report]")) {
    el.textContent = fmt(report[el.dataset.report]);
  }
  $("report-title").textContent = `Upload report · ${source}`;
  const rows = report.errors.map((e) =>
    h(
      "tr",
      { dataset: { code: e.code } },
      h("td", { class: "num" }, fmt(e.line)),
      h("td", {}, h("span", { class: `badge ${e.code === "duplicate" ? "warn" : "bad"}` }, e.code), " ", LINE_REASONS[e.code] || ""),
    ),
  );
  lastRendered.delete($("report-lines"));
  $("report-lines").replaceChildren(...rows);
  show($("report-lines-wrap"), rows.length > 0);
  show($("report-truncated"), Boolean(report.errorsTruncated));
  show(section, true);
  announce(
    `Upload finished: ${fmt(report.added)} added, ${fmt(report.duplicates)} duplicates, ${fmt(report.invalid)} invalid.`,
  );
}

function applyCounts(poolId, counts) {
  const pool = state.pools.find((p) => p.id === poolId);
  if (!pool) return;
  for (const name of ["totalKeys", "availableKeys", "reservedKeys", "deliveredKeys", "invalidKeys"]) {
    pool[name] = counts[name];
  }
  renderPools();
  renderPoolDetail();
}

async function onPasteUpload(event) {
  event.preventDefault();
  const pool = selectedPool();
  const textarea = $("paste-keys");
  const problemEl = $("upload-problem");
  if (!pool) return;
  const lines = textarea.value.split(/\r?\n/);
  if (lines.at(-1) === "") lines.pop();
  if (!lines.some((line) => line.trim())) {
    showProblem(problemEl, { message: "Paste at least one key, one per line." });
    textarea.focus();
    return;
  }
  if (lines.length > MAX_JSON_KEYS) {
    showProblem(problemEl, {
      message: `That is ${fmt(lines.length)} lines; paste at most ${fmt(MAX_JSON_KEYS)} or upload a .txt file instead.`,
    });
    return;
  }
  await busy(event.currentTarget, async () => {
    try {
      const report = await api("POST", `/key-pools/${encodeURIComponent(pool.id)}/keys/upload`, { keys: lines });
      textarea.value = "";
      clearProblem(problemEl);
      applyCounts(pool.id, report);
      renderReport(report, `${fmt(lines.length)} pasted line${lines.length === 1 ? "" : "s"}`);
      await refreshAll();
    } catch (error) {
      handleError(problemEl, error);
    }
  });
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

async function onFileUpload(event) {
  event.preventDefault();
  const pool = selectedPool();
  const input = $("key-file");
  const problemEl = $("upload-problem");
  const file = input.files && input.files[0];
  if (!pool) return;
  if (!file) {
    showProblem(problemEl, { message: "Choose a .txt file first." });
    input.focus();
    return;
  }
  const line = $("upload-progress-line");
  const bar = $("upload-progress");
  const label = $("upload-progress-label");
  const setProgress = (loaded, total, done = false) => {
    const percent = total ? Math.round((loaded / total) * 100) : 100;
    bar.value = percent;
    label.textContent = done ? "100% sent · checking keys…" : `${percent}% of ${formatBytes(total)}`;
  };
  show(line, true);
  setProgress(0, file.size);
  await busy(event.currentTarget, async () => {
    try {
      const report = await uploadFile(pool.id, file, setProgress);
      input.value = "";
      show(line, false); // the report below says how it went
      clearProblem(problemEl);
      applyCounts(pool.id, report);
      renderReport(report, file.name);
      await refreshAll();
    } catch (error) {
      label.textContent = "Upload failed";
      handleError(problemEl, error);
    }
  });
}

// ---- Keys -----------------------------------------------------------------------------

// The latest loadKeys call: a refresh answered after a later "Load more" (or the reverse)
// must not put back the list the later call replaced.
let keysRequest = 0;

async function loadKeys({ more = false } = {}) {
  const poolId = state.selectedPoolId;
  if (!poolId || !state.pools.some((p) => p.id === poolId)) return;
  const request = ++keysRequest;
  const keys = state.keys;
  const status = $("key-status").value;
  const query = new URLSearchParams();
  if (status) query.set("status", status);
  if (more && keys.nextCursor) {
    query.set("cursor", keys.nextCursor);
    query.set("limit", String(KEYS_PAGE));
  } else {
    // A refresh re-reads everything the user has already paged through, in one request.
    query.set("limit", String(Math.min(MAX_PAGE, Math.max(KEYS_PAGE, keys.items.length))));
  }
  const generation = keys.generation;
  let page;
  try {
    page = await api("GET", `/key-pools/${encodeURIComponent(poolId)}/keys?${query}`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    showProblem($("keys-problem"), error);
    return;
  }
  if (generation !== state.keys.generation) return; // the pool or filter changed meanwhile
  if (request !== keysRequest) return; // a later call answers instead
  clearProblem($("keys-problem"));
  state.keys.items = more ? keys.items.concat(page.items) : page.items;
  state.keys.nextCursor = page.nextCursor;
  renderKeys();
}

function renderKeys() {
  const { items, nextCursor } = state.keys;
  show($("keys-empty"), items.length === 0);
  show($("keys-table").closest(".table-wrap"), items.length > 0);
  show($("keys-more"), Boolean(nextCursor));
  $("keys-shown").textContent = `${fmt(items.length)} shown${nextCursor ? ", more available" : ""}`;
  renderInto($("keys-body"), JSON.stringify(items), () =>
    items.map((key) => {
      const status = key.status.toLowerCase();
      const tone = { available: "ok", reserved: "warn", delivered: "info", invalid: "bad" }[status];
      const action =
        key.status === "AVAILABLE"
          ? h(
              "button",
              {
                type: "button",
                class: "button danger small",
                "aria-label": `Invalidate key ${shortId(key.id)}`,
                dataset: { action: "invalidate", id: key.id, focus: `key:${key.id}` },
              },
              "Invalidate",
            )
          : "";
      return h(
        "tr",
        { dataset: { keyId: key.id, status: key.status } },
        h("td", {}, h("code", { title: key.id }, shortId(key.id))),
        h("td", {}, h("span", { class: `badge ${tone}` }, status)),
        h("td", { class: "opt" }, when(key.createdAt)),
        h("td", {}, key.deliveredAt ? when(key.deliveredAt) : when(key.reservedAt)),
        h("td", { class: "opt" }, key.orderId ? h("code", { title: key.orderId }, shortId(key.orderId)) : "—"),
        h("td", { class: "actions" }, action),
      );
    }),
  );
}

function onKeyFilter() {
  state.keys = { ...state.keys, items: [], nextCursor: null, generation: state.keys.generation + 1 };
  lastRendered.delete($("keys-body"));
  loadKeys().catch((error) => handleError($("keys-problem"), error));
}

function confirmDialog(text) {
  const dialog = $("confirm-dialog");
  $("confirm-text").textContent = text;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

async function invalidateKey(keyId) {
  const pool = selectedPool();
  if (!pool) return;
  const ok = await confirmDialog(
    `Key ${shortId(keyId)} in “${pool.name}” will be marked invalid and never sold. This cannot be undone.`,
  );
  if (!ok) return;
  try {
    await api("DELETE", `/key-pools/${encodeURIComponent(pool.id)}/keys/${encodeURIComponent(keyId)}`);
    clearProblem($("keys-problem"));
    announce(`Key ${shortId(keyId)} invalidated.`);
  } catch (error) {
    handleError($("keys-problem"), error);
  }
  await refreshAll();
}

// ---- Offers ---------------------------------------------------------------------------

async function loadOffers() {
  try {
    state.offers = await allPages("/seller/offers");
    clearProblem($("offers-problem"));
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    showProblem($("offers-problem"), error);
    return;
  }
  renderOffers();
  renderSaleOfferOptions();
  renderPools();
  renderPoolDetail();
}

function renderOffers() {
  // Never re-render under a threshold the seller is typing: it would lose the digits.
  if (document.activeElement && document.activeElement.matches("input[data-threshold]")) return;
  const poolNames = new Map(state.pools.map((p) => [p.id, p.name]));
  show($("offers-empty"), state.offers.length === 0);
  show($("offers-table").closest(".table-wrap"), state.offers.length > 0);
  const signature = JSON.stringify([state.offers, [...poolNames]]);
  renderInto($("offers-body"), signature, () =>
    state.offers.map((offer) => {
      const inStock = offer.availability === "in_stock";
      const availability =
        offer.deliveryType === "AUTO_KEY"
          ? `${inStock ? "In stock" : "Out of stock"} · ${fmt(offer.autoKeyAvailableCount)} key${offer.autoKeyAvailableCount === 1 ? "" : "s"}`
          : inStock
            ? "In stock"
            : "Out of stock";
      const next = { draft: ["publish", "Publish"], active: ["deactivate", "Deactivate"], inactive: ["activate", "Activate"] }[
        offer.status
      ];
      const statusTone = { draft: "muted", active: "ok", inactive: "warn" }[offer.status] || "muted";
      const [levelLabel, levelTone] = STOCK_LEVELS[offer.stockLevel] || [offer.stockLevel, "muted"];
      const threshold =
        offer.deliveryType === "AUTO_KEY"
          ? h("input", {
              type: "number",
              class: "threshold",
              min: 0,
              max: 1000000,
              inputmode: "numeric",
              placeholder: "off",
              value: offer.lowStockThreshold ?? "",
              "aria-label": `Low-stock threshold of “${offer.title}”`,
              dataset: { threshold: offer.id, focus: `threshold:${offer.id}` },
            })
          : "—";
      return h(
        "tr",
        { dataset: { offerId: offer.id, status: offer.status, availability: offer.availability } },
        h("th", { scope: "row" }, offer.title),
        h("td", { class: "num" }, `${offer.price.amount} ${offer.price.currency}`),
        h("td", { class: "opt" }, offer.keyPoolId ? poolNames.get(offer.keyPoolId) || shortId(offer.keyPoolId) : "—"),
        h("td", { class: "opt" }, h("span", { class: `badge ${statusTone}` }, offer.status)),
        h("td", { class: "opt" }, h("span", { class: `badge ${inStock ? "ok" : "bad"}`, dataset: { role: "availability" } }, availability)),
        h("td", {}, h("span", { class: `badge ${levelTone}`, dataset: { role: "stock-level" } }, levelLabel)),
        h("td", {}, threshold),
        h(
          "td",
          { class: "actions" },
          next
            ? h(
                "button",
                {
                  type: "button",
                  class: `button small ${next[0] === "deactivate" ? "secondary" : ""}`,
                  "aria-label": `${next[1]} “${offer.title}”`,
                  dataset: { action: next[0], id: offer.id, focus: `offer:${offer.id}` },
                },
                next[1],
              )
            : "",
        ),
      );
    }),
  );
}

async function onCreateOffer(event) {
  event.preventDefault();
  const problemEl = $("offer-problem");
  const title = $("offer-title").value.trim();
  const amount = $("offer-amount").value.trim();
  const currency = $("offer-currency").value.trim().toUpperCase();
  const keyPoolId = $("offer-pool").value || null;
  const threshold = $("offer-threshold").value.trim();
  await busy(event.currentTarget, async () => {
    try {
      const offer = await api("POST", "/offers/draft", {
        title,
        price: { amount, currency },
        deliveryType: "AUTO_KEY",
        keyPoolId,
        lowStockThreshold: threshold === "" ? null : Number(threshold),
      });
      clearProblem(problemEl);
      $("offer-title").value = "";
      $("offer-amount").value = "";
      $("offer-threshold").value = "";
      await refreshAll();
      announce(`Draft “${offer.title}” saved. Publish it to start selling.`);
    } catch (error) {
      handleError(problemEl, error);
    }
  });
}

async function offerAction(action, offerId) {
  const problemEl = $("offers-problem");
  try {
    let offer;
    if (action === "publish") offer = await api("POST", "/offers/publish", { offerId });
    else {
      const status = action === "activate" ? "active" : "inactive";
      offer = await api("PATCH", `/offers/${encodeURIComponent(offerId)}/status`, { status });
    }
    clearProblem(problemEl);
    announce(`“${offer.title}” is now ${offer.status}.`);
  } catch (error) {
    handleError(problemEl, error);
  }
  await refreshAll();
}

// Saving a draft with an id updates the offer and keeps its status.
async function onThresholdChange(input) {
  const offer = state.offers.find((o) => o.id === input.dataset.threshold);
  if (!offer) return;
  const raw = input.value.trim();
  const problemEl = $("offers-problem");
  try {
    const saved = await api("POST", "/offers/draft", {
      id: offer.id,
      title: offer.title,
      price: offer.price,
      deliveryType: offer.deliveryType,
      keyPoolId: offer.keyPoolId,
      lowStockThreshold: raw === "" ? null : Number(raw),
    });
    clearProblem(problemEl);
    announce(
      saved.lowStockThreshold === null
        ? `“${saved.title}” has no low-stock threshold.`
        : `“${saved.title}” is low at ${fmt(saved.lowStockThreshold)} keys or fewer.`,
    );
  } catch (error) {
    handleError(problemEl, error);
  }
  await refreshAll();
}

// ---- Audit log ------------------------------------------------------------------------

async function loadAudit() {
  const poolId = state.selectedPoolId;
  if (!poolId || !state.pools.some((p) => p.id === poolId)) return;
  let events;
  try {
    events = await allPages(`/key-pools/${encodeURIComponent(poolId)}/events`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    showProblem($("audit-problem"), error);
    return;
  }
  if (poolId !== state.selectedPoolId) return;
  clearProblem($("audit-problem"));
  state.audit = events.slice(-AUDIT_SHOWN).reverse();
  renderAudit(events.length);
}

function eventDetails(event) {
  const parts = Object.entries(event.details || {}).map(([name, value]) =>
    /^[0-9a-f-]{36}$/.test(String(value)) ? `${name} ${shortId(String(value))}` : `${name} ${value}`,
  );
  if (event.keyIds && event.keyIds.length) {
    parts.push(`${fmt(event.keyIds.length)} key${event.keyIds.length === 1 ? "" : "s"}`);
  }
  if (event.orderId) parts.push(`order ${shortId(event.orderId)}`);
  return parts.join(" · ") || "—";
}

function renderAudit(total) {
  const events = state.audit;
  show($("audit-empty"), events.length === 0);
  show($("audit-table").closest(".table-wrap"), events.length > 0);
  $("audit-shown").textContent =
    total > events.length ? `Newest ${fmt(events.length)} of ${fmt(total)}` : `${fmt(total)} events`;
  renderInto($("audit-body"), JSON.stringify(events), () =>
    events.map((event) =>
      h(
        "tr",
        { dataset: { action: event.action } },
        h("td", {}, when(event.occurredAt)),
        h("td", {}, h("code", {}, event.action)),
        h("td", { class: "wrap" }, eventDetails(event)),
      ),
    ),
  );
}

// The export needs the bearer token, so it is fetched, then saved from a Blob.
async function downloadAudit() {
  const pool = selectedPool();
  if (!pool) return;
  const problemEl = $("audit-problem");
  try {
    const response = await request("GET", `/key-pools/${encodeURIComponent(pool.id)}/events`, undefined, "text/csv");
    const url = URL.createObjectURL(await response.blob());
    const link = h("a", { href: url, download: `autokey-audit-${pool.id}.csv`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    clearProblem(problemEl);
    announce(`Audit log of “${pool.name}” downloaded.`);
  } catch (error) {
    handleError(problemEl, error);
  }
}

// ---- Sales ----------------------------------------------------------------------------

async function loadSales() {
  const query = new URLSearchParams({ limit: String(SALES_PAGE) });
  if ($("sales-status").value) query.set("status", $("sales-status").value);
  if ($("sales-offer").value) query.set("offerId", $("sales-offer").value);
  let page;
  try {
    page = await api("GET", `/seller/orders?${query}`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    showProblem($("sales-problem"), error);
    return;
  }
  clearProblem($("sales-problem"));
  state.sales = page.items;
  show($("sales-more"), Boolean(page.nextCursor));
  renderSales();
}

function renderSaleOfferOptions() {
  const select = $("sales-offer");
  const current = select.value;
  const signature = JSON.stringify(state.offers.map((o) => [o.id, o.title]));
  if (lastRendered.get(select) === signature) return;
  lastRendered.set(select, signature);
  select.replaceChildren(
    h("option", { value: "" }, "All offers"),
    ...state.offers.map((o) => h("option", { value: o.id }, o.title)),
  );
  select.value = state.offers.some((o) => o.id === current) ? current : "";
}

function renderSales() {
  const titles = new Map(state.offers.map((o) => [o.id, o.title]));
  show($("sales-empty"), state.sales.length === 0);
  show($("sales-table").closest(".table-wrap"), state.sales.length > 0);
  renderInto($("sales-body"), JSON.stringify([state.sales, [...titles]]), () =>
    state.sales.map(({ order, deliveredKeyIds }) => {
      const tone = { FULFILLED: "ok", PAID: "info", PENDING: "warn", CANCELED: "muted" }[order.status] || "muted";
      return h(
        "tr",
        { dataset: { orderId: order.id, status: order.status } },
        h("td", {}, h("code", { title: order.id }, shortId(order.id))),
        h("td", { class: "opt" }, when(order.createdAt)),
        h("td", { class: "wrap" }, titles.get(order.offerId) || shortId(order.offerId)),
        h("td", { class: "num" }, `${order.total.amount} ${order.total.currency}`),
        h("td", {}, h("span", { class: `badge ${tone}` }, order.status.toLowerCase())),
        h(
          "td",
          { class: "wrap", dataset: { role: "key-ids" } },
          deliveredKeyIds.length
            ? [
                ...deliveredKeyIds.slice(0, 3).map((id) => h("code", { title: id }, shortId(id))),
                deliveredKeyIds.length > 3 ? ` +${fmt(deliveredKeyIds.length - 3)} more` : "",
              ]
            : "—",
        ),
      );
    }),
  );
}

// ---- Webhooks -------------------------------------------------------------------------

async function loadHooks() {
  let page;
  try {
    page = await api("GET", "/seller/webhooks");
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    showProblem($("hooks-problem"), error);
    return;
  }
  clearProblem($("hooks-problem"));
  state.hooks = page.items;
  renderHooks();
  if (state.deliveriesFor) await loadDeliveries(state.deliveriesFor);
}

function renderHooks() {
  show($("hooks-empty"), state.hooks.length === 0);
  show($("hooks-table").closest(".table-wrap"), state.hooks.length > 0);
  renderInto($("hooks-body"), JSON.stringify([state.hooks, state.deliveriesFor]), () =>
    state.hooks.map((hook) => {
      const open = hook.id === state.deliveriesFor;
      return h(
        "tr",
        { class: open ? "selected" : null, dataset: { endpointId: hook.id, status: hook.status } },
        h("td", { class: "wrap url" }, hook.url),
        h("td", { class: "opt wrap" }, hook.eventTypes.join(", ")),
        h(
          "td",
          {},
          h("span", { class: `badge ${hook.status === "active" ? "ok" : "bad"}`, title: hook.disabledReason || null }, hook.status),
        ),
        h(
          "td",
          { class: "actions" },
          h(
            "button",
            {
              type: "button",
              class: "button secondary small",
              "aria-pressed": open ? "true" : "false",
              "aria-label": `Deliveries to ${hook.url}`,
              dataset: { action: "deliveries", id: hook.id, focus: `hook:${hook.id}` },
            },
            "Deliveries",
          ),
        ),
      );
    }),
  );
}

async function loadDeliveries(endpointId) {
  const page = await api("GET", `/seller/webhooks/${encodeURIComponent(endpointId)}/deliveries?limit=50`);
  if (endpointId !== state.deliveriesFor) return;
  const items = page.items;
  show($("deliveries"), true);
  show($("deliveries-empty"), items.length === 0);
  show($("deliveries-table").closest(".table-wrap"), items.length > 0);
  renderInto($("deliveries-body"), JSON.stringify(items), () =>
    items.map((d) => {
      const tone = { delivered: "ok", pending: "warn", failed: "bad" }[d.status] || "muted";
      const result = d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : d.lastError || "not sent yet";
      return h(
        "tr",
        { dataset: { deliveryId: d.id, status: d.status } },
        h("td", { class: "opt" }, when(d.createdAt)),
        h("td", {}, h("code", {}, d.eventType)),
        h("td", {}, h("span", { class: `badge ${tone}` }, d.status)),
        h("td", { class: "num opt" }, fmt(d.attempts)),
        h("td", { class: "opt" }, result),
        h(
          "td",
          { class: "actions" },
          h(
            "button",
            {
              type: "button",
              class: "button small",
              "aria-label": `Replay ${d.eventType} delivery ${shortId(d.id)}`,
              dataset: { action: "replay", id: d.id, focus: `delivery:${d.id}` },
            },
            "Replay",
          ),
        ),
      );
    }),
  );
}

async function showDeliveries(endpointId) {
  state.deliveriesFor = state.deliveriesFor === endpointId ? null : endpointId;
  lastRendered.delete($("deliveries-body"));
  renderHooks();
  show($("deliveries"), false);
  if (!state.deliveriesFor) return;
  try {
    await loadDeliveries(endpointId);
    clearProblem($("deliveries-problem"));
  } catch (error) {
    show($("deliveries"), true);
    handleError($("deliveries-problem"), error);
  }
}

async function replayDelivery(deliveryId) {
  const endpointId = state.deliveriesFor;
  if (!endpointId) return;
  try {
    await api(
      "POST",
      `/seller/webhooks/${encodeURIComponent(endpointId)}/deliveries/${encodeURIComponent(deliveryId)}/replay`,
    );
    clearProblem($("deliveries-problem"));
    announce(`Delivery ${shortId(deliveryId)} will be sent again.`);
  } catch (error) {
    handleError($("deliveries-problem"), error);
  }
  await loadHooks().catch((error) => handleError($("hooks-problem"), error));
}

function hideSecret() {
  $("hook-secret-value").textContent = "";
  show($("hook-secret"), false);
}

async function onRegisterHook(event) {
  event.preventDefault();
  const problemEl = $("hook-problem");
  const url = $("hook-url").value.trim();
  const eventTypes = [...$("hook-events").querySelectorAll("input:checked")].map((box) => box.value);
  if (!url) {
    showProblem(problemEl, { message: "Enter the https address of your receiver." });
    $("hook-url").focus();
    return;
  }
  if (!eventTypes.length) {
    showProblem(problemEl, { message: "Choose at least one event to send." });
    return;
  }
  await busy(event.currentTarget, async () => {
    try {
      const made = await api("POST", "/seller/webhooks", { url, eventTypes });
      clearProblem(problemEl);
      $("hook-url").value = "";
      $("hook-secret-value").textContent = made.secret;
      show($("hook-secret"), true);
      $("hook-secret").focus();
      await loadHooks();
    } catch (error) {
      handleError(problemEl, error);
    }
  });
}

function renderEventChoices() {
  $("hook-events").append(
    ...EVENT_TYPES.map((type) =>
      h(
        "label",
        { class: "check" },
        h("input", { type: "checkbox", name: "event", value: type, checked: true }),
        " ",
        h("code", {}, type),
      ),
    ),
  );
}

// ---- Wiring ---------------------------------------------------------------------------

function onClick(event) {
  const button = event.target.closest("button[data-action]");
  if (!button || button.disabled) return;
  const { action, id } = button.dataset;
  if (action === "select-pool") {
    selectPool(id);
    return;
  }
  if (action === "invalidate") {
    invalidateKey(id);
    return;
  }
  if (action === "deliveries") {
    showDeliveries(id);
    return;
  }
  if (action === "replay") {
    button.disabled = true;
    replayDelivery(id).finally(() => {
      button.disabled = false;
    });
    return;
  }
  if (["publish", "activate", "deactivate"].includes(action)) {
    button.disabled = true;
    offerAction(action, id).finally(() => {
      button.disabled = false;
    });
  }
}

function start() {
  $("token-form").addEventListener("submit", onTokenSubmit);
  $("pool-form").addEventListener("submit", onCreatePool);
  $("paste-form").addEventListener("submit", onPasteUpload);
  $("file-form").addEventListener("submit", onFileUpload);
  $("offer-form").addEventListener("submit", onCreateOffer);
  $("key-status").addEventListener("change", onKeyFilter);
  $("keys-more").addEventListener("click", () =>
    loadKeys({ more: true }).catch((error) => handleError($("keys-problem"), error)),
  );
  $("workspace").addEventListener("change", (event) => {
    if (event.target.matches("input[data-threshold]")) onThresholdChange(event.target);
  });
  $("sales-status").addEventListener("change", () => loadSales().catch((e) => handleError($("sales-problem"), e)));
  $("sales-offer").addEventListener("change", () => loadSales().catch((e) => handleError($("sales-problem"), e)));
  $("audit-download").addEventListener("click", downloadAudit);
  $("hook-form").addEventListener("submit", onRegisterHook);
  $("hook-secret-done").addEventListener("click", () => {
    hideSecret();
    $("hook-url").focus();
  });
  renderEventChoices();
  $("forget-token").addEventListener("click", () => {
    signOut(null);
    announce("Token forgotten.");
  });
  $("refresh-now").addEventListener("click", () => refreshAll());
  $("workspace").addEventListener("click", onClick);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.token) refreshAll({ quiet: true });
  });

  if (state.token) {
    showWorkspace();
    refreshAll();
  } else {
    showSignIn();
  }
}

start();
