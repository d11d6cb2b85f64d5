/* Messenger operator dashboard: plain JavaScript, no build step.
 * Reads go through /api/operator/…; every change goes over the operator socket (/ws/operator/).
 * The socket follows docs/protocol.md "Resume rules": per-conversation last applied id,
 * duplicates dropped, a gap answered by one `resume`, the list reloaded after a reconnect. */
(() => {
  "use strict";

  const config = JSON.parse(document.getElementById("config").textContent);
  const me = config.user;

  // --- strings ----------------------------------------------------------------------------------
  const STRINGS = {
    en: {
      connecting: "Connecting…", online: "Live", offline: "Offline — reconnecting…",
      interrupted: "Live updates interrupted — reconnecting…",
      nobody: "Unassigned", typing: "is typing", note: "Internal note", you: "You",
      newConversation: "New conversation", newMessage: "New message",
      noConversations: "No conversations", loadFailed: "Could not load", sendFailed: "Not sent",
      attachmentsUnavailable: "Attachments are not available", uploading: "Uploading…",
      movedAway: "This conversation moved out of your view.", choose: "— choose —",
      watching: "Watching", waiting: "waiting", muted: "Muted", unmuted: "Sound on",
      operator: "Operator", today: "Today", week: "This week", load: "Open now", spread: "Spread (max − min)",
      branch: "Branch", region: "Region", page: "Page", invitation: "Invited with", browser: "Browser", email: "E-mail", phone: "Phone",
      language: "Language", ip: "IP", status: { open: "open", pending: "pending", snoozed: "snoozed", resolved: "resolved", closed: "closed" },
      priority: ["", "low", "medium", "high", "urgent"], earlierNone: "None", delivered: "Delivered", read: "Read", sent: "Sent",
      openLoad: "open", unreadCount: "unread", operatorStatus: { online: "online", away: "away", busy: "busy", offline: "offline" },
      rating: "Rating", nps: "NPS", customFields: "Form",
      alert: "Needs attention", alertOpen: "Open", dismiss: "Dismiss",
      steps: {
        route: "Routed", assigned: "Assigned", reassigned: "Reassigned", unassigned: "Unassigned", transferred: "Transferred",
        escalated: "Escalated", escalation_queued: "Escalation: back to the queue", queued: "Queued",
      },
      reasons: { manual: "by hand", transfer: "", "routing rule": "routing rule", "inbox branch": "inbox's branch", "default branch": "default branch", "no branch": "no branch" },
      from: "from", hours: "hours", closed: "closed", step: "step",
      // The routing log's and the supervisor alert's words, as the server stores them (English).
      phrases: {
        "fewest open conversations, then longest since last assignment": "fewest open conversations, then longest since last assignment",
        "round-robin (longest since last assignment)": "round-robin (longest since last assignment)",
        "outside working hours": "outside working hours", "no eligible operator": "no eligible operator",
        "escalation fallback": "escalation fallback", "fallback branch": "fallback branch", wait: "wait",
        "escalation steps without an answer": "escalation steps without an answer",
        "not opened within": "not opened within", seconds: "s",
      },
      // System notices in the history ({…}: content_attributes.notice's fields).
      notices: {
        transferred: "Transferred to {to}", escalated: "Escalated from {from} to {to}: not opened within {timeout} s",
        queued: "Not opened by {from}; back in the branch queue ({why}). Supervisors alerted.",
      },
    },
    ru: {
      connecting: "Подключение…", online: "На связи", offline: "Нет связи — переподключаемся…",
      interrupted: "Обновления прерваны — восстанавливаем…",
      nobody: "Не назначен", typing: "печатает", note: "Внутренняя заметка", you: "Вы",
      newConversation: "Новый диалог", newMessage: "Новое сообщение",
      noConversations: "Диалогов нет", loadFailed: "Не удалось загрузить", sendFailed: "Не отправлено",
      attachmentsUnavailable: "Вложения недоступны", uploading: "Загрузка…",
      movedAway: "Диалог больше не в вашей зоне.", choose: "— выбрать —",
      watching: "Наблюдение", waiting: "ждёт", muted: "Без звука", unmuted: "Звук включён",
      operator: "Оператор", today: "Сегодня", week: "За неделю", load: "Сейчас открыто", spread: "Разброс (макс − мин)",
      branch: "Филиал", region: "Регион", page: "Страница", invitation: "Приглашение", browser: "Браузер", email: "E-mail", phone: "Телефон",
      language: "Язык", ip: "IP", status: { open: "открыт", pending: "ожидает", snoozed: "отложен", resolved: "решён", closed: "закрыт" },
      priority: ["", "низкий", "средний", "высокий", "срочный"], earlierNone: "Нет", delivered: "Доставлено", read: "Прочитано", sent: "Отправлено",
      openLoad: "открыто", unreadCount: "непрочитано", operatorStatus: { online: "в сети", away: "отошёл", busy: "занят", offline: "не в сети" },
      rating: "Оценка", nps: "NPS", customFields: "Анкета",
      alert: "Требует внимания", alertOpen: "Открыть", dismiss: "Скрыть",
      steps: {
        route: "Маршрут", assigned: "Назначен", reassigned: "Переназначен", unassigned: "Снят", transferred: "Передан",
        escalated: "Эскалация", escalation_queued: "Эскалация: снова в очереди", queued: "В очереди",
      },
      reasons: { manual: "вручную", transfer: "", "routing rule": "правило маршрутизации", "inbox branch": "филиал источника", "default branch": "филиал по умолчанию", "no branch": "без филиала" },
      from: "от", hours: "часы работы", closed: "закрыт", step: "шаг",
      phrases: {
        "fewest open conversations, then longest since last assignment": "меньше всего открытых диалогов, затем дольше всех без назначения",
        "round-robin (longest since last assignment)": "по очереди (дольше всех без назначения)",
        "outside working hours": "вне рабочих часов", "no eligible operator": "нет подходящего оператора",
        "escalation fallback": "резервный филиал эскалации", "fallback branch": "резервный филиал", wait: "ждать",
        "escalation steps without an answer": "шагов эскалации без ответа",
        "not opened within": "не открыт за", seconds: "с",
      },
      notices: {
        transferred: "Передан: {to}", escalated: "Эскалация: от {from} к {to}, не открыт за {timeout} с",
        queued: "{from} не открыл(а) диалог; он снова в очереди филиала ({why}). Супервизоры оповещены.",
      },
    },
  };
  const T = STRINGS[config.language] || STRINGS.en;

  // --- small helpers ----------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  };
  const initials = (name) => {
    const words = String(name || "?").replace(/[#\d]+/g, " ").trim().split(/\s+/).filter(Boolean);
    const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || "?").slice(0, 2);
    return letters.toUpperCase();
  };
  // The same name always gets the same colour.
  const hue = (text) => [...String(text || "")].reduce((sum, c) => (sum * 31 + c.charCodeAt(0)) % 360, 7);
  const avatar = (name, extra = "") => el("span", { class: `avatar ${extra}`.trim(), "aria-hidden": "true", dataset: { hue: String(Math.round(hue(name) / 30) % 12) } }, initials(name));
  const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;" })[c]);
  const newClientId = () => (crypto.randomUUID ? crypto.randomUUID() : `c-${Date.now()}-${Math.random().toString(16).slice(2)}`);
  const time = (iso) => (iso ? new Date(iso).toLocaleTimeString(config.language, { hour: "2-digit", minute: "2-digit" }) : "");
  const since = (iso) => {
    if (!iso) return "";
    const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (seconds < 60) return `${seconds}s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
    return `${Math.floor(seconds / 86400)}d`;
  };

  // static/messenger/formatting.js: the server's rules (messenger/formatting.py), for the composer
  // preview and a pending message; stored messages come rendered by the server.
  const renderFormatting = window.MessengerFormatting.render;

  async function api(url, options = {}) {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": config.csrf_token, ...(options.headers || {}) },
      ...options,
    });
    if (!response.ok) {
      const error = new Error(`${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  // --- state ------------------------------------------------------------------------------------
  const state = {
    tab: me.sees_all ? "all" : "mine",
    rows: new Map(), // conversation id → staff summary
    nextCursor: null,
    selected: null, // conversation id highlighted in the list
    open: null, // { id, watch, messages: Map, oldestId, hasMore, loading, lastReadSent }
    lastId: new Map(), // conversation id → highest applied event id
    resuming: new Set(),
    resumeAgain: new Set(),
    typing: new Map(), // conversation id → { name, preview, timer }
    canned: [], operators: [], branches: [], labels: [],
    counters: {},
    unreadMessages: 0,
    pendingAttachments: [],
    muted: localStorage.getItem("messenger.muted") === "1",
  };

  // --- socket -----------------------------------------------------------------------------------
  const socket = {
    ws: null, refCounter: 0, pending: new Map(), retry: 0, heartbeat: null, everConnected: false, outbox: [],
  };

  function connect() {
    setConnection("connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}${config.socket_path}`);
    socket.ws = ws;
    ws.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      handleFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      clearInterval(socket.heartbeat);
      for (const [, waiter] of socket.pending) waiter.reject(new Error("disconnected"));
      socket.pending.clear();
      state.resuming.clear();
      state.resumeAgain.clear();
      setConnection("offline");
      // Never reconnect forever on a session the server no longer accepts (docs/protocol.md,
      // "Close codes"). 4001, no session: the login page. 4003, the session ended, and 4005, the
      // role or branch changed: reload, so the page's own login check decides — the login page
      // after a logout, the dashboard again when this browser holds a newer session (a password
      // change here gives it a new session key) or the same user with new access.
      if (event.code === 4001) {
        location.assign(`${config.urls.login}?next=${encodeURIComponent(location.pathname)}`);
        return;
      }
      if (event.code === 4003 || event.code === 4005) { location.reload(); return; }
      // Exponential backoff with jitter so a restarted server is not stormed by every dashboard.
      const delay = Math.min(30000, 500 * 2 ** socket.retry) * (0.5 + Math.random() / 2);
      socket.retry += 1;
      setTimeout(connect, delay);
    });
  }

  function send(frame) {
    if (socket.ws && socket.ws.readyState === WebSocket.OPEN) { socket.ws.send(JSON.stringify(frame)); return true; }
    return false;
  }

  function command(type, fields = {}) {
    return new Promise((resolve, reject) => {
      const ref = `d${++socket.refCounter}`;
      socket.pending.set(ref, { resolve, reject });
      if (!send({ type, ref, ...fields })) { socket.pending.delete(ref); reject(new Error("offline")); }
    });
  }

  function setConnection(stateName) {
    const node = $("connection");
    node.dataset.state = stateName;
    node.textContent = { online: T.online, offline: T.offline, interrupted: T.interrupted }[stateName] || T.connecting;
  }

  function handleFrame(frame) {
    if (window.MessengerVisitors) window.MessengerVisitors.onFrame(frame); // visitors.js: hello, live, visitors.*
    if (frame.ref && socket.pending.has(frame.ref) && ["ack", "error", "conversation.snapshot"].includes(frame.type)) {
      const waiter = socket.pending.get(frame.ref);
      socket.pending.delete(frame.ref);
      if (frame.type === "error") waiter.reject(Object.assign(new Error(frame.message), { code: frame.code, retryAfter: frame.retry_after }));
      else waiter.resolve(frame);
      return;
    }
    switch (frame.type) {
      case "hello": return onHello(frame);
      case "pong": return;
      case "error": console.warn("messenger:", frame.code, frame.message); return;
      case "resume.done": return onResumeDone(frame.conversation_id);
      case "live": return onLive(frame.data || {});
      case "typing.started": case "typing.stopped": return onTyping(frame);
      case "presence": return onPresence(frame.data || {});
      case "unread": return setUnread(frame.data.messages, frame.data.conversations);
      case "supervisor.alert": return onSupervisorAlert(frame.data || {});
      default:
        if (typeof frame.id === "number" && frame.conversation_id) onDurable(frame);
    }
  }

  function onHello(frame) {
    const reconnect = socket.everConnected;
    socket.everConnected = true;
    socket.retry = 0;
    setConnection("online");
    $("my-status").value = frame.user.status === "offline" ? "online" : frame.user.status;
    clearInterval(socket.heartbeat);
    socket.heartbeat = setInterval(() => send({ type: "ping" }), (frame.heartbeat || config.heartbeat || 20) * 1000);
    if (reconnect) catchUp();
    else loadList();
  }

  /* After a reconnect or an interruption of live delivery: whatever happened meanwhile is replayed
   * from the event log, in order, and the list is read again. */
  function catchUp() {
    if (state.open) requestResume(state.open.id);
    loadList();
  }

  function onLive(data) {
    if (data.state === "interrupted") { setConnection("interrupted"); return; }
    setConnection("online");
    catchUp();
  }

  /* Resume rules 1–4 of docs/protocol.md. */
  function onDurable(frame) {
    const id = frame.conversation_id;
    const known = state.lastId.get(id);
    if (known !== undefined) {
      if (frame.id <= known) return;
      if (frame.id > known + 1) { requestResume(id); return; }
    }
    state.lastId.set(id, frame.id);
    apply(frame);
  }

  function requestResume(conversationId) {
    // One replay in flight per conversation; a frame dropped meanwhile may be newer than what
    // that replay reads, so another follows it.
    if (state.resuming.has(conversationId)) { state.resumeAgain.add(conversationId); return; }
    const after = state.lastId.get(conversationId) || 0;
    state.resuming.add(conversationId);
    command("resume", { conversation_id: conversationId, after }).catch((error) => {
      state.resuming.delete(conversationId);
      state.resumeAgain.delete(conversationId);
      if (error.code === "not_found") forgetConversation(conversationId);
    });
  }

  /* The conversation left this operator's scope (a transfer to another branch, say). The frames
   * that say so go to the new branch, so the old one's dashboards may see only a gap, and the
   * replay it asks for is refused like any conversation of another branch. */
  function forgetConversation(conversationId) {
    state.rows.delete(conversationId);
    state.lastId.delete(conversationId);
    if (state.typing.has(conversationId)) clearTyping(conversationId);
    if (state.open && state.open.id === conversationId) closeConversation(T.movedAway);
    else renderList();
    scheduleCounters();
  }

  function onResumeDone(conversationId) {
    state.resuming.delete(conversationId);
    if (state.resumeAgain.delete(conversationId)) requestResume(conversationId);
  }

  // --- applying events --------------------------------------------------------------------------
  function apply(frame) {
    const data = frame.data || {};
    const id = frame.conversation_id;
    if (frame.type === "message.created") return onMessage(id, data.message, data.conversation);
    if (frame.type === "message.updated") return onReceipt(id, data.direction, data.up_to_message_id, data.changes || {});
    if (frame.type === "conversation.read") {
      if (data.reader === "contact") return onReceipt(id, "out", data.up_to_message_id, { read_at: data.read_at });
      const row = state.rows.get(id);
      if (row) { row.unread_for_agent = 0; renderList(); }
      scheduleCounters();
      return;
    }
    if (data.conversation) onConversation(data.conversation, frame.type);
  }

  function visibleToMe(conversation) {
    return me.sees_all || (conversation.branch && conversation.branch.id === me.branch_id) || (conversation.assignee && conversation.assignee.id === me.id);
  }

  function matchesView(conversation) {
    if (!visibleToMe(conversation)) return false;
    const assigneeId = conversation.assignee ? conversation.assignee.id : null;
    if (state.tab === "mine" && assigneeId !== me.id) return false;
    if (state.tab === "unassigned" && assigneeId !== null) return false;
    if (state.tab === "branch" && (!conversation.branch || conversation.branch.id !== me.branch_id)) return false;
    const status = $("filter-status").value;
    const active = ["open", "pending", "snoozed"].includes(conversation.status);
    if (status === "active" && !active) return false;
    if (!["active", "any", ""].includes(status) && conversation.status !== status) return false;
    const priority = $("filter-priority").value;
    if (priority !== "" && Number(priority) !== conversation.priority) return false;
    const branch = $("filter-branch").value;
    if (branch && (!conversation.branch || String(conversation.branch.id) !== branch)) return false;
    const inbox = $("filter-inbox").value;
    if (inbox && String(conversation.inbox.id) !== inbox) return false;
    const label = $("filter-label").value;
    if (label && !(conversation.labels || []).includes(label)) return false;
    const query = $("search").value.trim().toLowerCase();
    if (query) {
      const haystack = [conversation.contact.name, conversation.contact.email, conversation.contact.phone, conversation.last_message_preview, conversation.identifier].join(" ").toLowerCase();
      if (!haystack.includes(query)) return false;
    }
    return true;
  }

  function onConversation(conversation, type) {
    const id = conversation.id;
    const existing = state.rows.get(id);
    if (!conversation.labels && existing) conversation.labels = existing.labels;
    if (matchesView(conversation)) {
      state.rows.set(id, { ...(existing || {}), ...conversation });
      if (!existing && (type === "conversation.created" || conversation.assignee?.id === me.id)) {
        notify(T.newConversation, `${conversation.contact.name}: ${conversation.last_message_preview || ""}`, id);
      }
    } else {
      state.rows.delete(id);
    }
    renderList();
    scheduleCounters();
    if (type !== "ack" && (!existing || (existing.assignee && existing.assignee.id) !== (conversation.assignee && conversation.assignee.id) || existing.status !== conversation.status)) scheduleOperators();
    if (state.open && state.open.id === id) {
      if (!visibleToMe(conversation)) {
        closeConversation(T.movedAway);
        return;
      }
      const before = state.open.conversation || {};
      state.open.conversation = { ...before, ...conversation };
      renderConversationHeader();
      renderActions();
      // The routing log grows with every assignment, transfer and escalation.
      const assigneeOf = (item) => (item.assignee ? item.assignee.id : null);
      if (assigneeOf(before) !== assigneeOf(conversation) || (before.branch && before.branch.id) !== (conversation.branch && conversation.branch.id)) loadDetail(id);
    }
  }

  async function onMessage(conversationId, message, summary) {
    const row = state.rows.get(conversationId);
    const incoming = message.direction === "in";
    const openHere = state.open && state.open.id === conversationId;
    if (row) {
      row.last_activity_at = message.created_at;
      // The server decides the preview (an auto-reply keeps the visitor's question there).
      if (summary && typeof summary.last_message_preview === "string") row.last_message_preview = summary.last_message_preview;
      else if (message.direction !== "internal" && ["contact", "user"].includes(message.sender.type)) row.last_message_preview = (message.body || "").slice(0, 140);
      // The server keeps waiting_since; mirrored here so the list needs no refetch per message.
      if (incoming && !row.waiting_since) row.waiting_since = message.created_at;
      if (message.direction === "out" && message.sender.type === "user") row.waiting_since = null;
      if (incoming) {
        scheduleCounters();
        row.unread_for_agent = (row.unread_for_agent || 0) + 1;
        if (row.assignee && row.assignee.id === me.id) setUnread(state.unreadMessages + 1);
      }
      renderList();
    } else {
      // A conversation that just became visible (first message, transfer): fetch its summary.
      try {
        const detail = await api(`${config.urls.conversations}${conversationId}/`);
        if (matchesView(detail.conversation) && !state.rows.has(conversationId)) {
          state.rows.set(conversationId, detail.conversation);
          state.lastId.set(conversationId, Math.max(state.lastId.get(conversationId) || 0, detail.conversation.last_seq));
          renderList();
        }
      } catch { /* not ours (any more) */ }
    }
    if (incoming) {
      const focusedHere = openHere && document.hasFocus() && !document.hidden;
      if (!focusedHere) notify(T.newMessage, `${message.sender.name}: ${message.body}`, conversationId);
      if (state.typing.has(conversationId)) clearTyping(conversationId);
    }
    if (openHere) {
      addMessage(message);
      scrollToBottom();
      markRead();
    }
  }

  function onReceipt(conversationId, direction, upTo, changes) {
    if (!state.open || state.open.id !== conversationId) return;
    for (const message of state.open.messages.values()) {
      if (message.direction !== direction || message.id > upTo) continue;
      if (changes.delivered_at && !message.delivered_at) message.delivered_at = changes.delivered_at;
      if (changes.read_at && !message.read_at) {
        message.read_at = changes.read_at;
        message.delivered_at = message.delivered_at || changes.read_at;
      }
      renderTicks(message);
    }
  }

  function onTyping(frame) {
    const data = frame.data || {};
    if (data.who !== "contact") return;
    const id = frame.conversation_id;
    if (frame.type === "typing.stopped") { clearTyping(id); return; }
    const previous = state.typing.get(id);
    if (previous) clearTimeout(previous.timer);
    // The server stops typing by itself after 8 s; the timer covers a lost typing.stopped.
    const timer = setTimeout(() => clearTyping(id), 10000);
    state.typing.set(id, { name: data.name, preview: data.preview, timer });
    renderTyping();
    renderRowPreview(id);
  }

  function clearTyping(id) {
    const entry = state.typing.get(id);
    if (entry) clearTimeout(entry.timer);
    state.typing.delete(id);
    renderTyping();
    renderRowPreview(id);
  }

  function onPresence(data) {
    if (data.user_id === undefined) return;
    const operator = state.operators.find((item) => item.id === data.user_id);
    if (operator) { operator.status = data.status; operator.connected = data.connected; renderActions(); }
    if (data.user_id === me.id && data.status !== "offline") $("my-status").value = data.status;
  }

  /* supervisor.alert (docs/protocol.md): an escalation chain ran out. Shown until dismissed; one
   * per conversation, the newest on top. */
  function onSupervisorAlert(data) {
    const id = data.conversation_id;
    const box = $("alerts");
    const previous = box.querySelector(`[data-conversation-id="${id}"]`);
    if (previous) previous.remove();
    const row = state.rows.get(id);
    const who = row ? row.contact.name : `#${id}`;
    const text = `${who} (#${id}): ${phrase(data.reason) || data.kind || ""}${data.step ? `, ${T.step} ${data.step}` : ""}`;
    const item = el("div", { class: "alert", role: "alert", dataset: { conversationId: id, kind: data.kind || "" } },
      el("span", { class: "alert-icon", "aria-hidden": "true" }, "⚠"),
      el("strong", {}, T.alert), " ", el("span", { class: "alert-text" }, text),
      el("span", { class: "spacer" }),
      el("button", { type: "button", class: "alert-open", onclick: () => { item.remove(); openConversation(id); } }, T.alertOpen),
      el("button", { type: "button", class: "ghost alert-dismiss", "aria-label": T.dismiss, title: T.dismiss, onclick: () => item.remove() }, "×"),
    );
    box.prepend(item);
    notify(T.alert, text, id);
  }

  // --- the side panel: a column on wide screens, a drawer below 1 100 px ---------------------------
  const narrow = window.matchMedia("(max-width: 1100px)");
  function sideVisible() {
    return narrow.matches ? document.body.dataset.side === "open" : document.body.dataset.side !== "closed";
  }
  function setSideOpen(open) {
    const wasOpenDrawer = narrow.matches && document.body.dataset.side === "open";
    document.body.dataset.side = open ? "open" : "closed";
    $("toggle-side").setAttribute("aria-expanded", String(sideVisible()));
    if (open && narrow.matches) $("close-side").focus();
    else if (!open && wasOpenDrawer && $("side").contains(document.activeElement)) $("toggle-side").focus();
  }
  narrow.addEventListener("change", () => { delete document.body.dataset.side; $("toggle-side").setAttribute("aria-expanded", String(sideVisible())); });

  // --- unread badge, sound, notifications -------------------------------------------------------
  function setUnread(messages, conversations) {
    state.unreadMessages = Math.max(0, messages || 0);
    if (conversations !== undefined) state.counters.mine_unread = conversations;
    document.title = state.unreadMessages > 0 ? `(${state.unreadMessages}) Messenger` : "Messenger";
    document.body.dataset.unread = String(state.unreadMessages);
    renderCounters();
  }

  let audioContext = null;
  function beep() {
    try {
      audioContext = audioContext || new AudioContext();
      const oscillator = audioContext.createOscillator();
      const gain = audioContext.createGain();
      oscillator.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, audioContext.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, audioContext.currentTime + 0.25);
      oscillator.connect(gain).connect(audioContext.destination);
      oscillator.start();
      oscillator.stop(audioContext.currentTime + 0.25);
    } catch { /* no audio device */ }
  }

  function notify(title, body, conversationId) {
    if (state.muted || (document.hasFocus() && !document.hidden)) return;
    beep();
    if ("Notification" in window && Notification.permission === "granted") {
      const note = new Notification(title, { body: body.slice(0, 140), tag: `conversation-${conversationId}` });
      note.onclick = () => { window.focus(); openConversation(conversationId); note.close(); };
    }
  }

  function renderMute() {
    const button = $("mute");
    button.replaceChildren(el("span", { class: `icon ${state.muted ? "icon-bell-off" : "icon-bell"}`, "aria-hidden": "true" }));
    button.setAttribute("aria-pressed", String(state.muted));
    button.title = state.muted ? T.muted : T.unmuted;
  }

  // --- the list ---------------------------------------------------------------------------------
  function listParams(cursor) {
    const params = new URLSearchParams({ tab: state.tab, status: $("filter-status").value });
    for (const [name, id] of [["priority", "filter-priority"], ["branch", "filter-branch"], ["inbox", "filter-inbox"], ["label", "filter-label"], ["q", "search"]]) {
      const value = $(id).value.trim();
      if (value) params.set(name, value);
    }
    if (cursor) params.set("cursor", cursor);
    return params;
  }

  let listGeneration = 0;
  async function loadList(cursor = null) {
    const generation = cursor ? listGeneration : ++listGeneration;
    let page;
    try {
      page = await api(`${config.urls.conversations}?${listParams(cursor)}`);
    } catch {
      return;
    }
    if (generation !== listGeneration) return; // a newer filter won
    const previous = new Map(state.rows);
    if (!cursor) state.rows.clear();
    for (const row of page.results) {
      // Frames applied while this page was on its way (a rating, a status) are newer than it.
      const known = previous.get(row.id);
      const newer = known && (state.lastId.get(row.id) || 0) > row.last_seq;
      state.rows.set(row.id, newer ? { ...row, ...known } : row);
      // A conversation being replayed takes its id from the replay: raised here, the replay's
      // frames would be dropped as duplicates.
      if (!state.resuming.has(row.id)) state.lastId.set(row.id, Math.max(state.lastId.get(row.id) || 0, row.last_seq));
      addInboxOption(row.inbox);
    }
    state.nextCursor = page.next_cursor;
    $("load-more").hidden = !page.next_cursor;
    if (page.counters) applyCounters(page.counters);
    renderList();
  }

  let countersTimer = null;
  function scheduleCounters() {
    clearTimeout(countersTimer);
    countersTimer = setTimeout(async () => {
      try {
        const page = await api(`${config.urls.conversations}?tab=mine&status=active&limit=1`);
        applyCounters(page.counters);
      } catch { /* next event retries */ }
    }, 1500);
  }

  function applyCounters(counters) {
    state.counters = counters;
    setUnread(counters.mine_unread_messages, counters.mine_unread);
  }

  function renderCounters() {
    const counters = state.counters;
    for (const node of document.querySelectorAll("[data-counter]")) {
      const key = node.dataset.counter;
      const unread = key === "mine" ? counters.mine_unread : key === "all" ? counters.all_unread : 0;
      node.textContent = counters[key] ? String(counters[key]) : "";
      node.classList.toggle("has-unread", Boolean(unread));
      node.title = "";
      if (unread) {
        node.textContent = `${counters[key] || 0} · ${unread}`;
        node.title = `${counters[key] || 0} ${T.openLoad}, ${unread} ${T.unreadCount}`;
      }
    }
  }

  function addInboxOption(inbox) {
    const select = $("filter-inbox");
    if (!inbox || select.querySelector(`option[value="${inbox.id}"]`)) return;
    select.append(el("option", { value: inbox.id }, inbox.name));
  }

  function sortedRows() {
    return [...state.rows.values()].sort((a, b) => {
      const left = a.last_activity_at || "";
      const right = b.last_activity_at || "";
      if (left !== right) return left < right ? 1 : -1;
      return b.id - a.id;
    });
  }

  function rowPreviewText(row) {
    const typing = state.typing.get(row.id);
    return typing ? `✎ ${typing.preview || T.typing}` : row.last_message_preview || "";
  }

  // The score on the scale the visitor rated on: "★ 4/5" (stars, 1–5) or "NPS 9/10" (0–10).
  function ratingScore(rating) {
    return rating.scale === "nps" ? `${T.nps} ${rating.score}/10` : `★ ${rating.score}/5`;
  }

  function ratingBadge(rating) {
    if (!rating) return null;
    const score = ratingScore(rating);
    return el("span", { class: "rating-badge", title: rating.comment ? `${T.rating} ${score}: ${rating.comment}` : `${T.rating} ${score}` },
      score, rating.comment ? el("span", { class: "rating-comment" }, ` “${rating.comment}”`) : null);
  }

  function rowNode(row) {
    return el(
      "li",
      {
        role: "option",
        id: `row-${row.id}`,
        class: ["conversation", state.open && state.open.id === row.id ? "is-open" : "", state.selected === row.id ? "is-selected" : "", row.unread_for_agent ? "is-unread" : ""].join(" "),
        dataset: { id: row.id, status: row.status, priority: row.priority, unread: row.unread_for_agent || 0 },
        "aria-selected": state.selected === row.id ? "true" : "false",
        onclick: () => { state.selected = row.id; openConversation(row.id); },
      },
      avatar(row.contact.name),
      el("div", { class: "row-body" },
        el("div", { class: "row-top" },
          el("span", { class: "name" }, row.contact.name),
          row.priority ? el("span", { class: `priority p${row.priority}` }, T.priority[row.priority]) : null,
          el("span", { class: "when", title: row.last_activity_at || "" }, time(row.last_activity_at)),
        ),
        el("div", { class: "row-preview", dir: "auto" }, rowPreviewText(row)),
        el("div", { class: "row-meta" },
          el("span", { class: `status s-${row.status}` }, T.status[row.status] || row.status),
          el("span", { class: "assignee" }, row.assignee ? row.assignee.name : T.nobody),
          row.branch && (me.sees_all || row.branch.id !== me.branch_id) ? el("span", { class: "branch" }, row.branch.name) : null,
          row.waiting_since ? el("span", { class: "waiting", dataset: { since: row.waiting_since } }, `${T.waiting} ${since(row.waiting_since)}`) : null,
          ratingBadge(row.rating),
          ...(row.labels || []).map((name) => el("span", { class: "label" }, name)),
          row.unread_for_agent ? el("span", { class: "unread-badge", "aria-label": "unread" }, String(row.unread_for_agent)) : null,
        ),
      ),
    );
  }

  function renderList() {
    const list = $("conversations");
    const rows = sortedRows();
    list.replaceChildren();
    // The listbox holds options only: its empty state is one, disabled.
    if (!rows.length) list.append(el("li", { class: "empty", role: "option", "aria-disabled": "true", "aria-selected": "false" }, T.noConversations));
    for (const row of rows) list.append(rowNode(row));
    showSelection();
  }

  /* The selected row, marked in place. The focus stays on the list: screen readers follow the
   * selection through aria-activedescendant. */
  function showSelection() {
    const list = $("conversations");
    for (const node of list.querySelectorAll("li[data-id]")) {
      const selected = Number(node.dataset.id) === state.selected;
      node.classList.toggle("is-selected", selected);
      node.setAttribute("aria-selected", String(selected));
    }
    if (state.selected && state.rows.has(state.selected)) list.setAttribute("aria-activedescendant", `row-${state.selected}`);
    else list.removeAttribute("aria-activedescendant");
  }

  /* Typing frames arrive several times a second: only that row's preview line changes. */
  function renderRowPreview(id) {
    const row = state.rows.get(id);
    const node = $("conversations").querySelector(`li[data-id="${id}"] .row-preview`);
    if (row && node) node.textContent = rowPreviewText(row);
  }

  function moveSelection(step) {
    const rows = sortedRows();
    if (!rows.length) return;
    let index = rows.findIndex((row) => row.id === state.selected);
    index = index < 0 ? 0 : Math.min(rows.length - 1, Math.max(0, index + step));
    state.selected = rows[index].id;
    renderList();
    const node = $("conversations").querySelector(`[data-id="${state.selected}"]`);
    if (node) node.scrollIntoView({ block: "nearest" });
  }

  // --- one conversation -------------------------------------------------------------------------
  async function openConversation(id, { watch } = {}) {
    const row = state.rows.get(id);
    // Supervisors look at other people's chats invisibly unless they take them over.
    if (watch === undefined) watch = me.sees_all && !(row && row.assignee && row.assignee.id === me.id);
    if (state.open && state.open.watch && state.open.id !== id) send({ type: "conversation.close_view", conversation_id: state.open.id });
    for (const select of ["assign-to", "transfer-branch", "transfer-operator"]) delete $(select).dataset.dirty;
    if (narrow.matches && document.body.dataset.side === "open") setSideOpen(false); // show the conversation
    state.open = { id, watch, messages: new Map(), byClientId: new Map(), oldestId: null, hasMore: false, loading: false, lastReadSent: 0, conversation: row || null };
    state.selected = id;
    $("conversation").dataset.state = "open";
    $("conversation").dataset.watch = watch ? "1" : "0";
    $("messages").replaceChildren();
    $("side").hidden = false;
    renderList();
    renderConversationHeader();
    let snapshot;
    try {
      snapshot = await command("conversation.open", { conversation_id: id, watch });
    } catch (error) {
      $("messages").append(el("div", { class: "notice" }, `${T.loadFailed}: ${error.message}`));
      return;
    }
    if (!state.open || state.open.id !== id) return;
    const data = snapshot.data;
    state.open.conversation = { ...(row || {}), ...data.conversation };
    state.open.hasMore = data.has_more;
    state.lastId.set(id, Math.max(state.lastId.get(id) || 0, data.last_id));
    for (const message of data.messages) addMessage(message);
    renderConversationHeader();
    renderActions();
    scrollToBottom();
    markRead();
    loadDetail(id);
    refreshOperators();
  }

  function closeConversation(notice) {
    state.open = null;
    $("conversation").dataset.state = "empty";
    $("side").hidden = true;
    $("messages").replaceChildren();
    $("empty-state").textContent = notice || $("empty-state").textContent;
    renderList();
  }

  async function loadDetail(id) {
    try {
      const detail = await api(`${config.urls.conversations}${id}/`);
      if (!state.open || state.open.id !== id) return;
      state.open.detail = detail.conversation;
      renderSide();
    } catch { /* the side panel stays empty */ }
  }

  async function loadOlder() {
    const open = state.open;
    if (!open || open.loading || !open.hasMore || open.oldestId === null) return;
    open.loading = true;
    try {
      const page = await api(`${config.urls.conversations}${open.id}/messages/?before=${open.oldestId}`);
      if (state.open !== open) return;
      const box = $("messages");
      const before = box.scrollHeight;
      for (const message of page.messages.reverse()) addMessage(message, { prepend: true });
      box.scrollTop += box.scrollHeight - before; // keep the reader where they were
      open.hasMore = page.has_more;
    } catch { /* retried on the next scroll */ } finally {
      open.loading = false;
    }
  }

  function addMessage(message, { prepend = false } = {}) {
    const open = state.open;
    if (!open) return;
    const pending = message.client_id ? open.byClientId.get(message.client_id) : null;
    if (open.messages.has(message.id)) return;
    if (pending && pending.pending) {
      pending.node.remove();
      open.byClientId.delete(message.client_id);
    }
    const node = messageNode(message);
    message.node = node;
    open.messages.set(message.id, message);
    if (message.client_id) open.byClientId.set(message.client_id, message);
    if (open.oldestId === null || message.id < open.oldestId) open.oldestId = message.id;
    const box = $("messages");
    if (prepend) box.prepend(node);
    else box.append(node);
  }

  function messageNode(message) {
    const content = el("div", { class: "content", dir: "auto" }); // Arabic or Hebrew reads right to left
    const notice = noticeText(message);
    if (notice !== null) content.textContent = notice;
    else content.innerHTML = message.content || escapeHtml(message.body || ""); // server-rendered safe HTML
    const attachments = (message.attachments || []).map((attachment) =>
      attachment.is_image
        ? el("a", { href: attachment.url, target: "_blank", rel: "noopener" }, el("img", { src: attachment.url, alt: attachment.name, class: "attachment-image" }))
        : el("a", { href: attachment.url, target: "_blank", rel: "noopener", class: "attachment" }, el("span", { class: "icon icon-clip", "aria-hidden": "true" }), ` ${attachment.name}`),
    );
    const kind = message.sender.type === "system" ? "system" : message.direction;
    return el(
      "div",
      { class: `message m-${kind}${message.pending ? " is-pending" : ""}`, dataset: { id: message.id || "", clientId: message.client_id || "", direction: message.direction } },
      el("div", { class: "bubble" },
        message.direction === "internal" ? el("div", { class: "note-tag" }, T.note) : null,
        content,
        ...attachments,
        el("div", { class: "meta" },
          el("span", { class: "sender", title: message.sender.name || "" }, message.sender.name || ""),
          el("time", { datetime: message.created_at || "" }, time(message.created_at)),
          message.direction === "out" ? ticksNode(message) : null,
        ),
      ),
    );
  }

  function ticksNode(message) {
    const ticks = message.pending ? "pending" : message.read_at ? "read" : message.delivered_at ? "delivered" : "sent";
    // docs/dashboard.md: one tick when the widget received it, two blue ticks when read; a sent
    // message not yet received shows an empty circle.
    const label = { pending: "…", sent: "○", delivered: "✓", read: "✓✓" }[ticks];
    return el("span", { class: `ticks t-${ticks}`, dataset: { ticks }, title: T[ticks] || "" }, label);
  }

  function renderTicks(message) {
    if (!message.node) return;
    const old = message.node.querySelector(".ticks");
    if (old) old.replaceWith(ticksNode(message));
  }

  function scrollToBottom() {
    const box = $("messages");
    box.scrollTop = box.scrollHeight;
  }

  /* Read receipts only for a real (not watching) viewer who can see the page. */
  function markRead() {
    const open = state.open;
    if (!open || open.watch || document.hidden) return;
    let newest = 0;
    for (const message of open.messages.values()) if (message.direction === "in" && message.id > newest) newest = message.id;
    const row = state.rows.get(open.id);
    if (!newest || (newest <= open.lastReadSent && !(row && row.unread_for_agent))) return;
    open.lastReadSent = newest;
    send({ type: "conversation.read", conversation_id: open.id, up_to_message_id: newest });
    if (row && row.unread_for_agent) {
      if (row.assignee && row.assignee.id === me.id) setUnread(state.unreadMessages - row.unread_for_agent);
      row.unread_for_agent = 0;
      renderList();
    }
  }

  function renderConversationHeader() {
    const open = state.open;
    if (!open) return;
    const conversation = open.conversation || {};
    $("conversation-title").textContent = conversation.contact ? conversation.contact.name : `#${open.id}`;
    $("conversation-title").title = $("conversation-title").textContent; // shortened with an ellipsis when long
    $("conversation-avatar").replaceChildren(avatar(conversation.contact ? conversation.contact.name : "?"));
    const rating = conversation.rating;
    const ratingNode = $("conversation-rating");
    ratingNode.hidden = !rating;
    ratingNode.replaceChildren();
    if (rating) {
      ratingNode.append(
        el("span", { class: "rating-score" }, `${T.rating}: ${ratingScore(rating)}`),
        rating.comment ? el("q", { class: "rating-text" }, rating.comment) : null,
        rating.rated_at ? el("time", { class: "muted small", datetime: rating.rated_at }, ` ${time(rating.rated_at)}`) : null,
      );
    }
    const meta = [
      conversation.inbox && conversation.inbox.name,
      conversation.branch && conversation.branch.name,
      T.status[conversation.status] || conversation.status,
      conversation.assignee ? conversation.assignee.name : T.nobody,
    ].filter(Boolean);
    $("conversation-meta").textContent = meta.join(" · ");
    $("watch-banner").hidden = !open.watch;
    $("take-over").hidden = !(me.sees_all && (!conversation.assignee || conversation.assignee.id !== me.id));
    const active = ["open", "pending", "snoozed"].includes(conversation.status);
    $("resolve").hidden = !active || open.watch;
    $("reopen").hidden = active || open.watch;
    for (const control of $("composer").querySelectorAll("textarea, button, input")) control.disabled = open.watch;
    for (const control of $("side").querySelectorAll("select, button:not(#close-side), input")) control.disabled = open.watch;
    updateConfirmButtons();
    renderTyping();
  }

  function renderTyping() {
    const node = $("typing");
    const entry = state.open ? state.typing.get(state.open.id) : null;
    node.textContent = entry ? `${entry.name} ${T.typing}${entry.preview ? `: ${entry.preview}` : "…"}` : "";
  }

  // --- side panel -------------------------------------------------------------------------------
  function renderSide() {
    const detail = state.open && state.open.detail;
    if (!detail) return;
    const contact = detail.contact;
    const pairs = [
      [T.email, contact.email], [T.phone, contact.phone], [T.region, contact.region || (detail.region && detail.region.name)],
      [T.branch, detail.branch && detail.branch.name], [T.page, detail.page.url], [T.invitation, detail.invitation], [T.browser, [contact.browser, contact.os].filter(Boolean).join(", ")],
      [T.language, contact.language], [T.ip, contact.ip],
    ];
    $("contact-card").replaceChildren(avatar(contact.name, "large"), el("div", {}, el("strong", {}, contact.name), el("div", { class: "muted small" }, [contact.email, contact.phone].filter(Boolean).join(" · "))));
    const details = $("contact-details");
    details.replaceChildren();
    for (const [name, value] of pairs) {
      if (!value || name === T.email || name === T.phone) continue;
      details.append(el("dt", {}, name), el("dd", {}, name === T.page && /^https?:\/\//i.test(value) ? el("a", { href: value, target: "_blank", rel: "noopener noreferrer" }, detail.page.title || value) : value));
    }
    // What the pre-chat (or offline) form stored besides name, e-mail and phone, under the labels
    // this inbox's form gives them, in the form's order; a field the form no longer has (or
    // without a label) under its name, after them, by name (PostgreSQL's jsonb keeps no order).
    const labels = new Map(Object.entries(contact.custom_labels || {}));
    const order = [...labels.keys()];
    const rank = (key) => (labels.has(key) ? order.indexOf(key) : order.length);
    const custom = Object.entries(contact.custom || {}).sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
    const form = $("contact-custom");
    form.hidden = !custom.length;
    form.replaceChildren(el("h4", {}, T.customFields), el("dl", { class: "details" }, ...custom.flatMap(([key, value]) => [el("dt", {}, labels.get(key) || key.replace(/_/g, " ")), el("dd", { dataset: { field: key } }, String(value))])));
    const log = $("routing-log");
    log.replaceChildren(...(detail.routing_log || []).map(routingEntry));
    const earlier = $("earlier");
    earlier.replaceChildren();
    if (!detail.earlier_conversations.length) earlier.append(el("li", { class: "muted" }, T.earlierNone));
    for (const other of detail.earlier_conversations) {
      earlier.append(el("li", {}, el("button", { type: "button", class: "link", onclick: () => openConversation(other.id) }, `#${other.id} · ${new Date(other.created_at).toLocaleDateString(config.language)} · ${T.status[other.status] || other.status}`), el("div", { class: "muted small" }, other.last_message_preview)));
    }
    renderActions();
  }

  /* A phrase the server stored in English, in the page's language (unknown ones as they are). */
  function phrase(text) {
    if (typeof text !== "string") return text;
    if (Object.hasOwn(T.phrases, text)) return T.phrases[text];
    const steps = /^(\d+) escalation steps without an answer$/.exec(text);
    if (steps) return `${steps[1]} ${T.phrases["escalation steps without an answer"]}`;
    const timeout = /^not opened within (\d+) s$/.exec(text);
    return timeout ? `${T.phrases["not opened within"]} ${timeout[1]} ${T.phrases.seconds}` : text;
  }

  /* A system notice stored with its words as data, in the page's language; else its text. */
  function noticeText(message) {
    const notice = message.sender.type === "system" && message.content_attributes && message.content_attributes.notice;
    const pattern = notice && T.notices[notice.type];
    if (!pattern) return null;
    return pattern.replace(/\{(\w+)\}/g, (_, key) => String(key === "why" ? phrase(notice[key]) : notice[key] ?? ""));
  }

  function routingHead(entry) {
    const step = T.steps[entry.step] || entry.step || "";
    const reasonKey = typeof entry.reason === "string" ? entry.reason : "";
    // "transferred" with the reason "transfer" said it twice; known reasons are translated.
    const reason = reasonKey in T.reasons ? T.reasons[reasonKey] : phrase(reasonKey);
    const parts = [step];
    if (reason && reason.toLowerCase() !== step.toLowerCase()) parts.push(`(${reason})`);
    if (entry.to && entry.to.name) parts.push(`→ ${entry.to.name}`);
    if (entry.to_branch && !(entry.to && entry.to.name)) parts.push(`→ ${entry.to_branch}`);
    else if (entry.to_branch) parts.push(`· ${entry.to_branch}`);
    if (entry.branch && typeof entry.branch === "string") parts.push(`→ ${entry.branch}`);
    if (entry.region) parts.push(`(${entry.region})`);
    return parts.join(" ");
  }

  function routingEntry(entry) {
    const lines = [];
    if (entry.from && entry.from.name) lines.push(`${T.from} ${entry.from.name}`);
    if (entry.why && entry.why !== entry.reason) lines.push(phrase(entry.why));
    if (entry.policy) lines.push(phrase(entry.policy));
    if (entry.tie_break) lines.push(phrase(entry.tie_break));
    if (entry.hours) lines.push(`${T.hours}: ${phrase(entry.hours.decision)}${entry.hours.closed ? ` (${entry.hours.closed} ${T.closed})` : ""}`);
    if (entry.step_number || entry.escalation_step) lines.push(`${T.step} ${entry.step_number || entry.escalation_step}`);
    const candidates = (entry.candidates || []).map((candidate, index) =>
      el("li", { class: index === entry.picked_index ? "picked" : "" }, `${candidate.name || operatorName(candidate.user_id)}: ${candidate.open ?? "?"} ${T.openLoad}${candidate.status ? `, ${T.operatorStatus[candidate.status] || candidate.status}` : ""}`),
    );
    return el("li", { dataset: { step: entry.step || "" } },
      el("div", {}, el("strong", { class: "routing-head" }, routingHead(entry)), " ", el("time", { class: "muted small" }, time(entry.at))),
      ...lines.map((line) => el("div", { class: "muted small" }, line)),
      candidates.length ? el("ul", { class: "candidates" }, candidates) : null,
    );
  }

  function operatorName(userId) {
    const operator = state.operators.find((item) => item.id === userId);
    return operator ? operator.name : `#${userId}`;
  }

  /* A choice made but not yet confirmed survives a refresh of the options. */
  function fillSelect(select, items, label, current) {
    // Only the texts changed (a load, a status): updated in place, so an open dropdown stays open.
    const options = [...select.options].slice(1);
    if (options.length === items.length && options.every((option, index) => option.value === String(items[index].id))) {
      options.forEach((option, index) => {
        option.textContent = label(items[index]);
        option.className = items[index].status ? `st-${operatorStatus(items[index])}` : "";
      });
      if (select.dataset.dirty !== "1") select.value = String(current ?? "");
      if (select.selectedIndex < 0) select.value = "";
      return;
    }
    const chosen = select.dataset.dirty === "1" ? select.value : String(current ?? "");
    select.replaceChildren(el("option", { value: "" }, T.choose), ...items.map((item) => el("option", { value: item.id, selected: String(item.id) === chosen, class: item.status ? `st-${operatorStatus(item)}` : null }, label(item))));
    if (![...select.options].some((option) => option.value === chosen)) { select.value = ""; delete select.dataset.dirty; }
  }

  function operatorStatus(operator) {
    return operator.connected ? operator.status : "offline";
  }
  function operatorLabel(operator) {
    const status = operatorStatus(operator);
    return `${status === "offline" ? "○" : "●"} ${operator.name}${operator.branch ? ` · ${operator.branch.name}` : ""} · ${T.operatorStatus[status] || status} · ${operator.load} ${T.openLoad}`;
  }

  /* Loads change with every assignment anywhere: read them again when a conversation opens, after
   * an assignment or transfer, and (at most once a second) when assignment frames arrive. */
  let operatorsTimer = null;
  let operatorsGeneration = 0;
  async function refreshOperators() {
    const generation = ++operatorsGeneration;
    try {
      const results = (await api(config.urls.operators)).results;
      if (generation !== operatorsGeneration) return;
      state.operators = results;
      renderActions();
    } catch { /* the next change retries */ }
  }
  function scheduleOperators() {
    clearTimeout(operatorsTimer);
    operatorsTimer = setTimeout(refreshOperators, 1000);
  }

  function updateConfirmButtons() {
    const open = state.open;
    const assignee = open && open.conversation && open.conversation.assignee;
    $("assign-go").disabled = !open || open.watch || !$("assign-to").value || (assignee && String(assignee.id) === $("assign-to").value);
    $("transfer-branch-go").disabled = !open || open.watch || !$("transfer-branch").value;
    $("transfer-operator-go").disabled = !open || open.watch || !$("transfer-operator").value;
  }

  async function confirmedAct(selectId, type, field) {
    const select = $(selectId);
    if (!select.value) return;
    const value = Number(select.value);
    const ack = await act(type, { [field]: value });
    // Refused or not sent (the connection dropped): the choice stays, to confirm again.
    if (ack) { delete select.dataset.dirty; select.value = ""; refreshOperators(); }
    updateConfirmButtons();
  }

  function renderActions() {
    const open = state.open;
    if (!open || !open.conversation) return;
    const conversation = open.conversation;
    const sameBranch = state.operators.filter((operator) => operator.role !== "admin" && (me.sees_all || (operator.branch && conversation.branch && operator.branch.id === conversation.branch.id)));
    fillSelect($("assign-to"), sameBranch, operatorLabel, conversation.assignee && conversation.assignee.id);
    fillSelect($("transfer-branch"), state.branches.filter((branch) => !conversation.branch || branch.id !== conversation.branch.id), (branch) => branch.name);
    fillSelect($("transfer-operator"), state.operators.filter((operator) => operator.role !== "admin" && operator.id !== me.id), operatorLabel);
    updateConfirmButtons();
    $("set-status").value = conversation.status === "snoozed" ? "pending" : conversation.status;
    $("set-priority").value = String(conversation.priority || 0);
    const labels = $("set-labels");
    const selected = new Set(conversation.labels || []);
    labels.replaceChildren(labels.querySelector("legend") || el("legend", {}, "Labels"));
    labels.hidden = !state.labels.length; // no labels defined: no empty box
    for (const label of state.labels) {
      labels.append(el("label", { class: "label-choice" }, el("input", { type: "checkbox", value: label.name, checked: selected.has(label.name), disabled: open.watch }), ` ${label.name}`));
    }
  }

  async function act(type, fields) {
    if (!state.open) return;
    try {
      const ack = await command(type, { conversation_id: state.open.id, ...fields });
      if (ack.data && ack.data.conversation && state.open) onConversation({ ...state.open.conversation, ...ack.data.conversation }, "ack");
      return ack;
    } catch (error) {
      // No code: never sent, or no answer before the socket closed ("offline", "disconnected").
      alert(`${T.sendFailed}: ${error.code ? error.message : T.offline}`);
      return null;
    }
  }

  // --- composer ---------------------------------------------------------------------------------
  const body = $("body");
  let typingSentAt = 0;
  let typingStopTimer = null;

  function mode() {
    return $("composer").querySelector("input[name=mode]:checked").value;
  }

  function onComposerInput() {
    const text = body.value;
    $("preview").innerHTML = /[*_`\[]|https?:\/\//i.test(text) ? renderFormatting(text) : "";
    $("composer").dataset.mode = mode();
    renderCanned();
    if (!state.open || state.open.watch || mode() !== "reply") return; // notes must not show typing to the visitor
    const now = Date.now();
    if (now - typingSentAt > 3000 && text) {
      typingSentAt = now;
      send({ type: "typing.start", conversation_id: state.open.id });
    }
    clearTimeout(typingStopTimer);
    typingStopTimer = setTimeout(stopTyping, 4000);
  }

  function stopTyping() {
    clearTimeout(typingStopTimer);
    if (typingSentAt && state.open && !state.open.watch) send({ type: "typing.stop", conversation_id: state.open.id });
    typingSentAt = 0;
  }

  async function submitComposer(event) {
    if (event) event.preventDefault();
    const open = state.open;
    const text = body.value.trim();
    if (!open || open.watch || (!text && !state.pendingAttachments.length)) return;
    const isNote = mode() === "note";
    const clientId = newClientId();
    const attachments = state.pendingAttachments.splice(0);
    renderPendingAttachments();
    body.value = "";
    onComposerInput();
    stopTyping();
    const pending = {
      id: 0, client_id: clientId, pending: true, direction: isNote ? "internal" : "out", body: text, content: renderFormatting(text),
      sender: { type: "user", name: me.name }, attachments, created_at: new Date().toISOString(),
    };
    pending.node = messageNode(pending);
    open.byClientId.set(clientId, pending);
    $("messages").append(pending.node);
    scrollToBottom();
    const fields = { conversation_id: open.id, client_id: clientId, body: text, private: isNote, attachment_ids: attachments.map((item) => item.id) };
    for (let attempt = 1; ; attempt++) {
      try {
        const ack = await command("message.send", fields);
        if (state.open === open) addMessage(ack.data.message);
      } catch (error) {
        // The database is down for a moment: the same client_id goes again, so it is stored once.
        if (error.code === "unavailable" && attempt < 5) {
          await new Promise((resolve) => setTimeout(resolve, (error.retryAfter || 5) * 1000));
          continue;
        }
        pending.node.classList.add("is-failed");
        pending.node.title = `${T.sendFailed}: ${error.message}`;
        if (!body.value) body.value = text; // nothing typed is lost
      }
      return;
    }
  }

  // Canned responses: "/code" at the start of the box.
  let cannedIndex = 0;
  function cannedMatches() {
    const match = /^\/([\w-]*)$/.exec(body.value);
    if (!match) return [];
    return state.canned.filter((item) => item.short_code.startsWith(match[1])).slice(0, 8);
  }

  function renderCanned() {
    const list = $("canned");
    const matches = cannedMatches();
    list.hidden = !matches.length;
    cannedIndex = Math.min(cannedIndex, Math.max(0, matches.length - 1));
    list.replaceChildren(...matches.map((item, index) => el("li", { role: "option", class: index === cannedIndex ? "is-selected" : "", "aria-selected": index === cannedIndex ? "true" : "false", onmousedown: (event) => { event.preventDefault(); insertCanned(item); } }, el("strong", {}, `/${item.short_code}`), " ", item.text.slice(0, 80))));
  }

  function insertCanned(item) {
    body.value = item.text;
    cannedIndex = 0;
    onComposerInput();
    body.focus();
  }

  async function uploadFiles(files) {
    if (!state.open) return;
    for (const file of files) {
      const form = new FormData();
      form.append("conversation_id", state.open.id);
      form.append("file", file);
      const chip = el("span", { class: "chip" }, `${T.uploading} ${file.name}`);
      $("pending-attachments").append(chip);
      try {
        const result = await api(config.urls.attachments, { method: "POST", body: form });
        state.pendingAttachments.push(result.attachment);
      } catch (error) {
        alert(error.status === 404 || error.status === 405 ? T.attachmentsUnavailable : `${T.sendFailed}: ${file.name}`);
      } finally {
        chip.remove();
        renderPendingAttachments();
      }
    }
  }

  function renderPendingAttachments() {
    const box = $("pending-attachments");
    for (const chip of box.querySelectorAll(".chip.ready")) chip.remove();
    for (const attachment of state.pendingAttachments) {
      box.append(el("span", { class: "chip ready" }, el("span", { class: "icon icon-clip", "aria-hidden": "true" }), ` ${attachment.name} `, el("button", { type: "button", class: "link", "aria-label": "remove", onclick: () => { state.pendingAttachments = state.pendingAttachments.filter((item) => item !== attachment); renderPendingAttachments(); } }, "×")));
    }
  }

  // --- fairness ---------------------------------------------------------------------------------
  async function showFairness() {
    const dialog = $("fairness");
    const bodyNode = $("fairness-body");
    bodyNode.textContent = "…";
    dialog.showModal();
    try {
      const data = await api(config.urls.fairness);
      const head = el("tr", {}, ...[T.operator, T.branch, T.today, T.week, T.load].map((name) => el("th", {}, name)));
      const rows = data.operators.map((row) => el("tr", {}, el("td", {}, row.name), el("td", {}, row.branch ? row.branch.name : ""), el("td", {}, row.today), el("td", {}, row.week), el("td", {}, `${row.load}/${row.max_concurrent}`)));
      bodyNode.replaceChildren(
        el("table", { class: "fairness" }, el("thead", {}, head), el("tbody", {}, rows)),
        el("p", {}, `${T.spread}: ${T.today} ${data.spread.today} · ${T.week} ${data.spread.week} · ${T.load} ${data.spread.load}`),
      );
    } catch {
      bodyNode.textContent = T.loadFailed;
    }
  }

  // --- wiring -----------------------------------------------------------------------------------
  function selectTab(tab) {
    state.tab = tab;
    for (const button of document.querySelectorAll("#tabs [data-tab]")) button.setAttribute("aria-selected", String(button.dataset.tab === tab));
    loadList();
  }

  function isTypingTarget(target) {
    return target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT" || target.isContentEditable);
  }

  function wire() {
    for (const button of document.querySelectorAll("#tabs [data-tab]")) button.addEventListener("click", () => selectTab(button.dataset.tab));
    // The tabs: ← and → move between them and select (the ARIA tabs pattern).
    $("tabs").addEventListener("keydown", (event) => {
      const tabs = [...document.querySelectorAll("#tabs [data-tab]")];
      const index = tabs.indexOf(event.target);
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (index < 0 || !step) return;
      event.preventDefault();
      const next = tabs[(index + step + tabs.length) % tabs.length];
      next.focus();
      selectTab(next.dataset.tab);
    });
    // Arriving on the list selects a row (the open one, else the first), marked in place: a
    // re-render here would take the row a click is landing on.
    $("conversations").addEventListener("focus", () => {
      if (state.selected && state.rows.has(state.selected)) return;
      const first = sortedRows()[0];
      state.selected = state.open && state.rows.has(state.open.id) ? state.open.id : first ? first.id : null;
      showSelection();
    });
    let searchTimer = null;
    $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => loadList(), 300); });
    for (const id of ["filter-status", "filter-priority", "filter-branch", "filter-inbox", "filter-label"]) $(id).addEventListener("change", () => loadList());
    $("load-more").addEventListener("click", () => state.nextCursor && loadList(state.nextCursor));
    $("messages").addEventListener("scroll", () => { if ($("messages").scrollTop < 80) loadOlder(); });
    $("composer").addEventListener("submit", submitComposer);
    $("composer").addEventListener("change", (event) => { if (event.target.name === "mode") onComposerInput(); });
    body.addEventListener("input", onComposerInput);
    body.addEventListener("blur", stopTyping);
    body.addEventListener("keydown", (event) => {
      const matches = cannedMatches();
      if (matches.length && ["ArrowDown", "ArrowUp", "Enter", "Tab"].includes(event.key) && !event.ctrlKey) {
        event.preventDefault();
        if (event.key === "ArrowDown") cannedIndex = (cannedIndex + 1) % matches.length;
        else if (event.key === "ArrowUp") cannedIndex = (cannedIndex - 1 + matches.length) % matches.length;
        else insertCanned(matches[cannedIndex]);
        renderCanned();
        return;
      }
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submitComposer(); }
      if (event.key === "Escape") { event.preventDefault(); $("conversations").focus(); }
    });
    $("file").addEventListener("change", (event) => { uploadFiles([...event.target.files]); event.target.value = ""; });
    $("my-status").addEventListener("change", (event) => command("status.set", { status: event.target.value }).catch(() => {}));
    $("mute").addEventListener("click", () => {
      state.muted = !state.muted;
      localStorage.setItem("messenger.muted", state.muted ? "1" : "0");
      if (!state.muted && "Notification" in window && Notification.permission === "default") Notification.requestPermission();
      renderMute();
    });
    if ($("open-fairness")) $("open-fairness").addEventListener("click", showFairness);
    $("open-help").addEventListener("click", () => $("help").showModal());
    $("assign-me").addEventListener("click", () => act("conversation.assign", { assignee_id: me.id }));
    $("take-over").addEventListener("click", async () => {
      const id = state.open && state.open.id;
      if (!id) return;
      state.open.watch = false; // the assign command is refused in watch mode
      send({ type: "conversation.close_view", conversation_id: id });
      const ack = await act("conversation.assign", { assignee_id: me.id });
      if (ack) openConversation(id, { watch: false });
    });
    // Choosing in a picker only prepares the change; the button next to it makes it.
    for (const id of ["assign-to", "transfer-branch", "transfer-operator"]) {
      $(id).addEventListener("change", (event) => { event.target.dataset.dirty = "1"; updateConfirmButtons(); });
    }
    $("assign-go").addEventListener("click", () => confirmedAct("assign-to", "conversation.assign", "assignee_id"));
    $("transfer-branch-go").addEventListener("click", () => confirmedAct("transfer-branch", "conversation.transfer", "branch_id"));
    $("transfer-operator-go").addEventListener("click", () => confirmedAct("transfer-operator", "conversation.transfer", "assignee_id"));
    $("toggle-side").addEventListener("click", () => setSideOpen(!sideVisible()));
    $("close-side").addEventListener("click", () => setSideOpen(false));
    // Escape closes the drawer from any of its controls, its selects and text fields too.
    $("side").addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || !narrow.matches || document.body.dataset.side !== "open") return;
      event.stopPropagation();
      setSideOpen(false);
    });
    $("set-status").addEventListener("change", (event) => act("conversation.status", { status: event.target.value }));
    $("set-priority").addEventListener("change", (event) => act("conversation.priority", { priority: Number(event.target.value) }));
    $("snooze").addEventListener("click", () => {
      const value = $("snooze-until").value;
      if (value) act("conversation.status", { status: "snoozed", snoozed_until: new Date(value).toISOString() });
    });
    $("resolve").addEventListener("click", () => act("conversation.status", { status: "resolved" }));
    $("reopen").addEventListener("click", () => act("conversation.status", { status: "open" }));
    $("set-labels").addEventListener("change", () => {
      const names = [...$("set-labels").querySelectorAll("input:checked")].map((input) => input.value);
      act("conversation.labels", { labels: names });
    });
    document.addEventListener("visibilitychange", markRead);
    window.addEventListener("focus", markRead);
    document.addEventListener("keydown", (event) => {
      if (isTypingTarget(event.target) || event.ctrlKey || event.metaKey || event.altKey) {
        if (event.key === "N" && event.ctrlKey && event.shiftKey) {
          event.preventDefault();
          const next = mode() === "reply" ? "note" : "reply";
          $("composer").querySelector(`input[value=${next}]`).checked = true;
          onComposerInput();
        }
        return;
      }
      // Arrows, Home, End and Enter belong to the focused control (a button, a link, a scrolled
      // region): they move in the list only when the list (or nothing) has the focus.
      const onList = event.target === $("conversations") || event.target === document.body;
      if (event.key === "j" || (event.key === "ArrowDown" && onList)) { event.preventDefault(); moveSelection(1); }
      else if (event.key === "k" || (event.key === "ArrowUp" && onList)) { event.preventDefault(); moveSelection(-1); }
      else if ((event.key === "Home" || event.key === "End") && onList) { event.preventDefault(); moveSelection(event.key === "End" ? Infinity : -Infinity); }
      else if (event.key === "Enter" && onList && state.selected) { event.preventDefault(); openConversation(state.selected); }
      else if (event.key === "/") { event.preventDefault(); $("search").focus(); }
      else if (event.key === "r" && state.open && !state.open.watch) { event.preventDefault(); body.focus(); }
      else if (event.key === "?") $("help").showModal();
      else if (event.key === "Escape") {
        // An open drawer closes first, giving the focus back to its button; then, the list.
        if (narrow.matches && document.body.dataset.side === "open") setSideOpen(false);
        else $("conversations").focus();
      }
    });
    // Waiting times tick without re-rendering the whole list.
    setInterval(() => {
      for (const node of document.querySelectorAll(".waiting[data-since]")) node.textContent = `${T.waiting} ${since(node.dataset.since)}`;
    }, 15000);
  }

  async function loadPickers() {
    const load = async (url) => { try { return (await api(url)).results; } catch { return []; } };
    [state.canned, state.operators, state.branches, state.labels] = await Promise.all([
      load(config.urls.canned), load(config.urls.operators), load(config.urls.branches), load(config.urls.labels),
    ]);
    const branchFilter = $("filter-branch");
    for (const branch of state.branches) branchFilter.append(el("option", { value: branch.id }, branch.name));
    const labelFilter = $("filter-label");
    for (const label of state.labels) labelFilter.append(el("option", { value: label.name }, label.name));
    renderActions();
  }

  wire();
  renderMute();
  $("toggle-side").setAttribute("aria-expanded", String(sideVisible()));
  for (const button of document.querySelectorAll("#tabs [data-tab]")) button.setAttribute("aria-selected", String(button.dataset.tab === state.tab));
  loadPickers();
  // The hook visitors.js uses (docs/dashboard.md, "Visitors"): socket commands, opening a conversation.
  window.MessengerDashboard = { command, openConversation, language: config.language };
  connect();
})();
