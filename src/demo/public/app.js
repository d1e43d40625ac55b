// The demo page: plain DOM, no framework. It uses the gateway's client exactly as an app would
// (see docs/client.md); the /demo API stands in for the helpdesk's own backend.
import { createTicketClient } from "./client.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const TYPING_IDLE_MS = 2500;
const MAX_EVENTS = 50;

const state = {
  agent: undefined, // { id, name }
  token: undefined,
  client: undefined,
  ticketId: undefined,
  ticket: undefined,
  unsubscribe: undefined,
  /** updates that arrive while a snapshot loads, re-applied on top of it */
  buffered: undefined,
  loads: 0,
  typing: new Map(), // userId -> { name, timer }
  amTyping: false,
  typingTimer: undefined,
};

async function api(path, { method = "GET", body, auth = false } = {}) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (auth) headers.authorization = `Bearer ${state.token}`;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.error ? `${json.error.code}: ${json.error.message}` : `HTTP ${res.status}`);
  return json;
}

// ---- connection -------------------------------------------------------------------------------

function connect(agent) {
  state.client?.close();
  state.agent = agent;
  state.token = undefined;
  const client = createTicketClient({
    url: location.origin,
    getToken: async () => {
      const { token } = await api("/demo/token", { method: "POST", body: { agent: agent.id } });
      state.token = token;
      return token;
    },
  });
  state.client = client;
  client.on("status", renderStatus);
  if (state.ticketId) void openTicket(state.ticketId);
}

const STATE_LABELS = { connecting: "Connecting…", connected: "Live", reconnecting: "Reconnecting…", refused: "Refused", closed: "Closed" };

function renderStatus(status) {
  const pill = $("connection");
  pill.dataset.state = status.state;
  pill.textContent = STATE_LABELS[status.state] ?? status.state;
  if (status.state === "connected" || status.state === "closed") return hideAlert();
  if (status.state === "refused") {
    return showAlert(`The gateway refused the connection (${status.code}): ${status.message}. Reload the page or pick another agent to try again.`);
  }
  if (status.state === "reconnecting" && status.code === "CONNECTION_FAILED") {
    return showAlert(`Cannot reach the gateway: ${status.message}. Retrying…`);
  }
  if (status.state === "reconnecting" && status.code) {
    const retry = status.retryInMs === undefined ? "" : ` Retrying in ${(status.retryInMs / 1000).toFixed(1)} s.`;
    return showAlert(`The gateway refused the connection (${status.code}): ${status.message}.${retry}`);
  }
}

function showAlert(text) {
  const alert = $("alert");
  alert.textContent = text;
  alert.hidden = false;
}

function hideAlert() {
  $("alert").hidden = true;
}

// ---- tickets ----------------------------------------------------------------------------------

async function loadTickets() {
  const { tickets } = await api("/demo/tickets");
  const list = $("ticket-list");
  list.replaceChildren(
    ...tickets.map((ticket) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.ticketId = ticket.id;
      button.innerHTML = `<span class="subject"></span><span class="badge"></span>`;
      button.querySelector(".subject").textContent = `#${ticket.id} ${ticket.subject}`;
      setBadge(button.querySelector(".badge"), ticket.status);
      button.addEventListener("click", () => void openTicket(ticket.id));
      item.append(button);
      return item;
    }),
  );
  markCurrent();
}

function markCurrent() {
  for (const button of $("ticket-list").querySelectorAll("button")) {
    if (button.dataset.ticketId === state.ticketId) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
}

async function openTicket(ticketId) {
  stopTyping();
  state.unsubscribe?.();
  state.unsubscribe = undefined;
  state.ticketId = ticketId;
  state.ticket = undefined;
  state.typing.clear();
  updateUrl();
  markCurrent();
  $("empty").hidden = true;
  $("ticket").hidden = false;
  $("ticket-id").textContent = ticketId;
  $("ticket-subject").textContent = "Loading…";
  $("comments").replaceChildren();
  $("events").replaceChildren();
  renderViewers([]);
  renderTyping();
  // snapshot first, then subscribe from the snapshot's seq: the gateway replays whatever was
  // committed in between, so nothing falls through the gap
  const snapshot = await loadSnapshot(ticketId);
  if (!snapshot || ticketId !== state.ticketId) return;
  state.unsubscribe = state.client.subscribe(
    ticketId,
    {
      // the missed events are gone: read the ticket again; updates meanwhile are re-applied on top
      onReset: () => void loadSnapshot(ticketId),
      onUpdate: (update) => {
        logEvent(update);
        if (state.buffered) state.buffered.push(update);
        else apply(update);
      },
      onPresence: renderViewers,
      onTyping: (signal) => {
        if (signal.userId !== state.agent.id) setTyping(signal.userId, signal.name, signal.typing);
      },
      onRevoked: ({ reason }) => showAlert(`You were removed from ticket #${ticketId}: ${reason}`),
      onError: (error) => {
        if (error.ticketId) showAlert(`Ticket #${ticketId}: ${error.code}: ${error.message}`);
      },
    },
    { sinceSeq: snapshot.seq },
  );
}

/** Read ticket, comments and seq; updates that arrive meanwhile are buffered, then re-applied. */
async function loadSnapshot(ticketId) {
  const load = ++state.loads;
  state.buffered = [];
  try {
    const snapshot = await api(`/demo/tickets/${encodeURIComponent(ticketId)}`);
    if (load !== state.loads || ticketId !== state.ticketId) return undefined;
    state.ticket = snapshot.ticket;
    renderTicket();
    $("comments").replaceChildren(...snapshot.comments.map(commentItem));
    const later = state.buffered.filter((update) => update.seq === null || update.seq > snapshot.seq);
    state.buffered = undefined;
    for (const update of later) apply(update);
    return snapshot;
  } catch (error) {
    if (load === state.loads) state.buffered = undefined;
    showAlert(`Could not load ticket #${ticketId}: ${error.message}`);
    return undefined;
  }
}

function apply(update) {
  const [table, op] = update.type.split(".");
  if (table === "tickets" && op !== "delete") {
    state.ticket = update.data;
    renderTicket();
  } else if (table === "ticket_comments" && op === "insert") {
    if (!document.querySelector(`#comments [data-comment-id="${update.data.id}"]`)) $("comments").append(commentItem(update.data));
  } else if (table === "ticket_comments" && op === "delete") {
    document.querySelector(`#comments [data-comment-id="${update.data.id}"]`)?.remove();
  }
}

function renderTicket() {
  const ticket = state.ticket;
  $("ticket-subject").textContent = ticket.subject;
  setBadge($("ticket-status"), ticket.status);
  $("ticket-priority").textContent = ticket.priority;
  $("ticket-updated").dateTime = ticket.updated_at;
  $("ticket-updated").textContent = new Date(ticket.updated_at).toLocaleTimeString();
  $("status").value = ticket.status;
  const listBadge = document.querySelector(`#ticket-list [data-ticket-id="${CSS.escape(ticket.id)}"] .badge`);
  if (listBadge) setBadge(listBadge, ticket.status);
}

function setBadge(element, status) {
  element.textContent = status;
  element.dataset.status = status;
}

function commentItem(comment) {
  const item = document.createElement("li");
  item.dataset.commentId = comment.id;
  const meta = document.createElement("p");
  meta.className = "meta";
  const author = document.createElement("strong");
  author.textContent = comment.author;
  const time = document.createElement("time");
  time.dateTime = comment.created_at;
  time.textContent = new Date(comment.created_at).toLocaleTimeString();
  meta.append(author, " · ", time);
  const body = document.createElement("p");
  body.className = "body";
  body.textContent = comment.body;
  item.append(meta, body);
  return item;
}

function logEvent(update) {
  const item = document.createElement("li");
  item.dataset.seq = update.seq ?? "";
  const latency = Date.now() - Date.parse(update.at);
  const seq = document.createElement("span");
  seq.className = "seq";
  seq.textContent = update.seq === null ? "raw" : `#${update.seq}`;
  const type = document.createElement("code");
  type.textContent = update.type;
  const detail = document.createElement("span");
  detail.className = "detail";
  detail.textContent = summary(update);
  const time = document.createElement("small");
  time.textContent = `${new Date(update.at).toLocaleTimeString()}${latency >= 0 && latency < 60_000 ? ` · ${latency} ms` : ""}`;
  item.append(seq, type, detail, time);
  const list = $("events");
  list.prepend(item);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

function summary(update) {
  const data = update.data ?? {};
  if (update.type.startsWith("tickets.")) return `status ${data.status}`;
  if (update.type.startsWith("ticket_comments.")) return `${data.author}: ${String(data.body ?? "").slice(0, 60)}`;
  return "";
}

// ---- presence and typing ----------------------------------------------------------------------

function renderViewers(viewers) {
  $("viewers").replaceChildren(
    ...viewers.map((viewer) => {
      const item = document.createElement("li");
      item.dataset.userId = viewer.userId;
      item.textContent = viewer.userId === state.agent?.id ? `${viewer.name} (you)` : viewer.name;
      return item;
    }),
  );
}

function setTyping(userId, name, typing) {
  const previous = state.typing.get(userId);
  clearTimeout(previous?.timer);
  state.typing.delete(userId);
  // the gateway sends typing:false when someone stops or leaves; the timer covers a lost signal
  if (typing) state.typing.set(userId, { name, timer: setTimeout(() => setTyping(userId, name, false), 10_000) });
  renderTyping();
}

function renderTyping() {
  const names = [...state.typing.values()].map((t) => t.name);
  $("typing").textContent = names.length === 0 ? "" : `${names.join(" and ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

function noteTyping() {
  if (!state.ticketId) return;
  if (!state.amTyping) {
    state.amTyping = true;
    void state.client.typing(state.ticketId, true);
  }
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(state.typingTimer);
  if (!state.amTyping) return;
  state.amTyping = false;
  if (state.ticketId) void state.client.typing(state.ticketId, false);
}

// ---- forms ------------------------------------------------------------------------------------

async function submit(form, action) {
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    showAlert(error.message);
  } finally {
    button.disabled = false;
  }
}

$("status-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const status = $("status").value;
  void submit(event.target, () => api(`/demo/tickets/${encodeURIComponent(state.ticketId)}`, { method: "POST", body: { status }, auth: true }));
});

$("comment-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const textarea = $("comment");
  const body = textarea.value;
  stopTyping();
  void submit(event.target, async () => {
    await api(`/demo/tickets/${encodeURIComponent(state.ticketId)}/comments`, { method: "POST", body: { body }, auth: true });
    textarea.value = "";
  });
});

$("comment").addEventListener("input", noteTyping);
$("comment").addEventListener("blur", stopTyping);

$("agent").addEventListener("change", (event) => {
  const agent = state.agents.find((a) => a.id === event.target.value);
  updateUrl(agent.id);
  connect(agent);
});

function updateUrl(agentId = state.agent?.id) {
  const next = new URLSearchParams();
  if (agentId) next.set("agent", agentId);
  if (state.ticketId) next.set("ticket", state.ticketId);
  history.replaceState(null, "", `?${next}`);
}

// ---- start ------------------------------------------------------------------------------------

async function main() {
  const { agents } = await api("/demo/agents");
  state.agents = agents;
  const select = $("agent");
  select.replaceChildren(...agents.map((agent) => new Option(agent.name, agent.id)));
  const agent = agents.find((a) => a.id === params.get("agent")) ?? agents[0];
  select.value = agent.id;
  await loadTickets();
  connect(agent);
  const ticketId = params.get("ticket");
  if (ticketId) await openTicket(ticketId);
}

main().catch((error) => showAlert(`The demo could not start: ${error.message}`));
