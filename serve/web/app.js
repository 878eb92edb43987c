// The chat page: asks POST /v1/query with "stream": true and shows the answer as it arrives,
// then its citations (file, page, quote). Everything is written with textContent, never
// innerHTML: answers and quotes come from documents and must not run as markup.
//
// URL parameters: ?q=QUESTION fills the question, &adapter=REF picks the style, &autorun=1
// asks at once (links that open with an answer, and the headless browser test).
"use strict";

const KEY_STORAGE = "hybrid.key";
const $ = (id) => document.getElementById(id);

let controller = null;      // AbortController of the request in progress
let streamSupported = true; // false once the server said it does not know "stream"

function setState(state) {
  // Read by tests and by anyone scripting the page: idle | busy | done | error.
  document.body.dataset.state = state;
}

function headers() {
  const h = { "Content-Type": "application/json", Accept: "text/event-stream, application/json" };
  const key = $("key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function errorText(response) {
  // Every error the server sends is {"error": {"code", "message"}}; a proxy may send anything.
  let text = `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && body.error) text = `${body.error.message} (${body.error.code})`;
  } catch (_) {
    /* not JSON: keep the status line */
  }
  if (response.status === 401) text += ". Enter the API key above.";
  const retry = response.headers.get("Retry-After");
  if (response.status === 503 && retry) text += ` Try again in ${retry} s.`;
  return text;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  setState("error");
}

function clearResult() {
  $("error").hidden = true;
  $("result").hidden = false;
  $("answer").textContent = "";
  $("citations").replaceChildren();
  $("sources-title").hidden = true;
  for (const id of ["route", "grounded", "timings"]) {
    $(id).textContent = "";
    $(id).title = "";
    $(id).className = id === "timings" ? "timings" : "badge";
  }
}

function fileName(path) {
  const parts = String(path).split(/[\\/]/);
  return parts[parts.length - 1] || String(path);
}

function showAnswer(answer) {
  $("answer").classList.remove("streaming");
  $("answer").textContent = answer.answer;
  $("route").textContent = answer.route;
  $("route").classList.add(answer.route);
  $("route").title = answer.reason || ""; // why this route (newer servers say)
  if (answer.route !== "refuse") {
    $("grounded").textContent = answer.grounded ? "grounded" : "not fully grounded";
    $("grounded").classList.add(answer.grounded ? "grounded" : "ungrounded");
  }
  const t = answer.timings || {};
  const parts = Object.entries(t).map(([name, ms]) => `${name.replace(/_ms$/, "")} ${Math.round(ms)} ms`);
  $("timings").textContent = parts.join(" · ");
  const list = $("citations");
  for (const c of answer.citations || []) {
    const item = document.createElement("li");
    item.value = c.n;
    const where = document.createElement("div");
    where.className = "where";
    where.title = c.source;
    where.textContent = fileName(c.source);
    const page = document.createElement("span");
    page.className = "page";
    page.textContent = ` — page ${c.page}`;
    where.append(page);
    const quote = document.createElement("blockquote");
    quote.textContent = c.quote;
    item.append(where, quote);
    list.append(item);
  }
  $("sources-title").hidden = list.children.length === 0;
  setState("done");
}

// Server-sent events from a fetch body: events are separated by a blank line; the data of an
// event is its "data:" lines joined by newlines.
async function readEvents(body, onData) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    const events = buffer.split(/\r?\n\r?\n/);
    buffer = done ? "" : events.pop();
    for (const event of events) {
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data && onData(data) === false) return;
    }
    if (done) return;
  }
}

function onStreamData(data) {
  if (data === "[DONE]") return false;
  let event;
  try {
    event = JSON.parse(data);
  } catch (_) {
    return true; // a comment or keep-alive
  }
  if (typeof event.token === "string") {
    $("answer").textContent += event.token;
  } else if (event.answer) {
    showAnswer(event.answer); // the final text may differ from the tokens (citation clean-up)
  } else if (event.error) {
    showError(`${event.error.message} (${event.error.code})`);
    return false;
  }
  return true;
}

async function post(question, adapter, stream) {
  const body = { question };
  if (adapter) body.adapter = adapter;
  if (stream) body.stream = true;
  return fetch("/v1/query", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
}

async function ask(question, adapter) {
  clearResult();
  setState("busy");
  $("submit").disabled = true;
  $("stop").disabled = false;
  controller = new AbortController();
  try {
    let response = await post(question, adapter, streamSupported);
    if (response.status === 422 && streamSupported) {
      // A server from before streaming rejects the unknown field: ask again without it.
      const copy = response.clone();
      const text = await copy.text();
      if (text.includes("stream")) {
        streamSupported = false;
        response = await post(question, adapter, false);
      }
    }
    if (!response.ok) {
      showError(await errorText(response));
      return;
    }
    const type = response.headers.get("Content-Type") || "";
    if (type.startsWith("text/event-stream")) {
      $("answer").classList.add("streaming");
      await readEvents(response.body, onStreamData);
      if (document.body.dataset.state === "busy") showError("the answer stream ended early; ask again");
    } else {
      showAnswer(await response.json());
    }
  } catch (err) {
    showError(err.name === "AbortError" ? "stopped" : `could not reach the server: ${err.message}`);
  } finally {
    $("answer").classList.remove("streaming");
    $("submit").disabled = false;
    $("stop").disabled = true;
    controller = null;
  }
}

function addOption(select, value, label) {
  const option = document.createElement("option");
  option.value = value;
  option.textContent = label;
  select.append(option);
}

// The style selector: adapters and their versions from GET /v1/adapters, else the model ids of
// the OpenAI-style GET /v1/models, else only the server's default.
async function loadAdapters() {
  const select = $("adapter");
  const wanted = new URLSearchParams(location.search).get("adapter");
  select.replaceChildren();
  addOption(select, "", "server default");
  addOption(select, "none", "base model (no adapter)");
  try {
    let response = await fetch("/v1/adapters", { headers: headers() });
    if (response.ok) {
      for (const a of await response.json()) {
        addOption(select, a.name, a.active ? `${a.name} (active: ${a.active})` : a.name);
        for (const v of a.versions) addOption(select, `${a.name}@${v}`, `${a.name}@${v}`);
      }
    } else if (response.status === 404) {
      response = await fetch("/v1/models", { headers: headers() });
      if (response.ok) {
        for (const m of (await response.json()).data || []) {
          if (m.id !== "base" && m.id !== "none") addOption(select, m.id, m.id);
        }
      }
    }
  } catch (_) {
    /* the selector keeps the default; asking will show what is wrong */
  }
  if (wanted && !Array.from(select.options).some((o) => o.value === wanted)) addOption(select, wanted, wanted);
  if (wanted) select.value = wanted;
}

async function checkHealth() {
  const badge = $("health");
  try {
    const response = await fetch("/healthz");
    badge.textContent = response.ok ? "ready" : "loading models…";
    badge.className = "health " + (response.ok ? "ok" : "");
  } catch (_) {
    badge.textContent = "server unreachable";
    badge.className = "health down";
  }
}

function start() {
  setState("idle");
  const params = new URLSearchParams(location.search);
  $("key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("key").addEventListener("change", () => {
    const key = $("key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    loadAdapters();
  });
  $("ask").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (question) ask(question, $("adapter").value);
  });
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("ask").requestSubmit();
  });
  $("stop").addEventListener("click", () => controller && controller.abort());
  if (params.get("q")) $("question").value = params.get("q");
  checkHealth();
  const adapters = loadAdapters();
  if (params.get("autorun") === "1" && params.get("q")) adapters.then(() => $("ask").requestSubmit());
}

start();
