/* Messenger dashboard: the live visitors screen (docs/dashboard.md, "Visitors").
 * The dashboard hands every socket frame to window.MessengerVisitors.onFrame and lends its socket
 * through window.MessengerDashboard.command; this file reads GET /api/operator/visitors/ on every
 * hello, on `live` restored and on `visitors.reset`, and applies `visitors.changed` in between. */
(() => {
  "use strict";
  const STRINGS = {
    en: {
      title: "Visitors on the site", close: "Close", none: "Nobody is on the site right now.",
      visitor: "Visitor", page: "Page", referrer: "Came from", onSite: "On site", pages: "Pages",
      location: "Location", inbox: "Inbox", status: "Status", returning: "Returning", fresh: "New",
      chatting: "Chatting", browsing: "Browsing", invite: "Invite", openChat: "Open chat", send: "Send invitation",
      cancel: "Cancel", placeholder: "Hello! Can I help you with anything?", invited: "Invited",
      direct: "Direct", more: "and {n} more", failed: "Not sent: {m}", count: "{n} on the site",
    },
    ru: {
      title: "Посетители на сайте", close: "Закрыть", none: "Сейчас на сайте никого нет.",
      visitor: "Посетитель", page: "Страница", referrer: "Откуда", onSite: "На сайте", pages: "Страниц",
      location: "Откуда по IP", inbox: "Канал", status: "Статус", returning: "Вернулся", fresh: "Новый",
      chatting: "В чате", browsing: "Смотрит сайт", invite: "Пригласить", openChat: "Открыть чат",
      send: "Отправить приглашение", cancel: "Отмена", placeholder: "Здравствуйте! Чем могу помочь?",
      invited: "Приглашён", direct: "Прямой заход", more: "и ещё {n}", failed: "Не отправлено: {m}",
      count: "{n} на сайте",
    },
  };
  const MAX_ROWS = 200;
  const lang = (document.documentElement.lang || "en").slice(0, 2);
  const T = STRINGS[lang] || STRINGS.en;
  const fmt = (text, vars) => text.replace(/\{(\w+)\}/g, (_, key) => (vars[key] != null ? vars[key] : ""));

  const state = {
    visitors: new Map(), // id → LiveVisitor (docs/protocol.md)
    hidden: 0, // visitors the last read left out (beyond its limit)
    invited: new Set(),
    inviting: null, // the visitor whose invitation box is open
    inviteRow: null, // that box, kept across renders: a list that changes keeps what is being typed
    open: false,
    fetching: false,
    fetchAgain: false,
    lastFetch: 0,
    renderQueued: false,
  };
  let panel = null, body = null, countNode = null, button = null;

  function h(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children || []) if (child != null) node.append(child);
    return node;
  }

  // --- data ---------------------------------------------------------------------------------------
  function fetchList() {
    // One read at a time; a reason to read again while one runs reads once more after it.
    if (state.fetching) { state.fetchAgain = true; return; }
    state.fetching = true;
    state.lastFetch = Date.now();
    fetch(`/api/operator/visitors/?limit=${MAX_ROWS}`, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error(String(response.status)))))
      .then((data) => {
        state.visitors = new Map(data.results.map((entry) => [entry.id, entry]));
        state.hidden = Math.max(0, data.count - data.results.length);
        render();
      })
      .catch((error) => console.warn("messenger: visitors", error))
      .finally(() => {
        state.fetching = false;
        if (state.fetchAgain) { state.fetchAgain = false; setTimeout(fetchList, 1000); }
      });
  }

  function applyChanges(data) {
    for (const entry of data.upserts || []) state.visitors.set(entry.id, entry);
    for (const id of data.removed || []) {
      if (!state.visitors.delete(id) && state.hidden > 0) state.hidden -= 1;
      state.invited.delete(id);
    }
    queueRender();
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "hello": fetchList(); return; // first connect and every reconnect: frames may have been lost
      case "live": if ((frame.data || {}).state === "restored") fetchList(); return;
      case "visitors.reset": fetchList(); return;
      case "visitors.changed": applyChanges(frame.data || {}); return;
      default:
    }
  }

  // --- screen -------------------------------------------------------------------------------------
  function total() { return state.visitors.size + state.hidden; }

  function since(iso) {
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    const h_ = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return (h_ ? `${h_}:${String(m).padStart(2, "0")}` : `${m}`) + `:${String(s).padStart(2, "0")}`;
  }

  // The visitor tells the server their page: only a web address becomes a link.
  const WEB = /^https?:\/\//i;

  function host(url) {
    try { return new URL(url).host; } catch { return url; }
  }

  function build() {
    button = document.getElementById("open-visitors");
    countNode = document.getElementById("visitors-count");
    if (!button) return;
    body = h("tbody");
    const head = h("tr", {}, [T.visitor, T.page, T.referrer, T.onSite, T.pages, T.location, T.inbox, T.status].map((name, i) =>
      h("th", { scope: "col", class: `col-${i}`, text: name })));
    panel = h("section", { id: "visitors", class: "visitors-panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "visitors-title", hidden: true }, [
      h("header", { class: "visitors-header" }, [
        h("h2", { id: "visitors-title", text: T.title }),
        h("span", { id: "visitors-total", class: "muted" }),
        h("span", { class: "spacer" }),
        h("button", { type: "button", class: "ghost", id: "close-visitors", text: T.close, onclick: () => toggle(false) }),
      ]),
      h("div", { class: "visitors-scroll" }, [h("table", { class: "visitors-table" }, [h("thead", {}, [head]), body])]),
      h("p", { id: "visitors-empty", class: "muted visitors-empty", text: T.none }),
    ]);
    panel.addEventListener("keydown", (event) => { if (event.key === "Escape") toggle(false); });
    document.body.append(panel);
    button.addEventListener("click", () => toggle(!state.open));
    setInterval(tick, 1000);
  }

  function toggle(open) {
    state.open = open;
    panel.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    document.body.classList.toggle("visitors-open", open);
    if (open) {
      // Below the top bar, whatever its height (it wraps on narrow screens).
      panel.style.top = `${button.closest("header").getBoundingClientRect().bottom}px`;
      render();
      panel.querySelector("#close-visitors").focus();
    } else button.focus();
  }

  function queueRender() {
    if (state.renderQueued) return;
    state.renderQueued = true;
    requestAnimationFrame(() => { state.renderQueued = false; render(); });
  }

  function tick() {
    if (!state.open) return;
    for (const cell of body.querySelectorAll("[data-since]")) cell.textContent = since(cell.dataset.since);
  }

  function render() {
    if (!panel) return;
    const count = total();
    countNode.textContent = count ? String(count) : "";
    if (!state.open) return;
    panel.querySelector("#visitors-total").textContent = fmt(T.count, { n: count }) +
      (count > MAX_ROWS ? " · " + fmt(T.more, { n: count - Math.min(MAX_ROWS, state.visitors.size) }) : "");
    panel.querySelector("#visitors-empty").hidden = count > 0;
    const rows = [...state.visitors.values()].sort((a, b) => (a.started_at < b.started_at ? 1 : -1)).slice(0, MAX_ROWS);
    const active = document.activeElement && panel.contains(document.activeElement) ? document.activeElement : null;
    const selection = active instanceof HTMLTextAreaElement ? [active.selectionStart, active.selectionEnd] : null;
    const focused = active ? active.closest("tr") : null;
    const keep = focused && focused.dataset.id;
    body.replaceChildren(...rows.flatMap(rowFor));
    if (active && active.isConnected) {
      // The invitation box being typed in is the same node, moved: its focus and caret come back.
      active.focus();
      if (selection) active.setSelectionRange(...selection);
    } else if (keep) {
      const again = body.querySelector(`tr[data-id="${CSS.escape(keep)}"] button, tr[data-id="${CSS.escape(keep)}"] textarea`);
      if (again) again.focus();
    }
  }

  function rowFor(v) {
    const location = [v.country, v.region].filter(Boolean).join(" · ") || "—";
    const tr = h("tr", { "data-id": v.id, class: v.chatting ? "is-chatting" : null }, [
      h("td", { class: "col-0" }, [
        h("span", { class: `visitor-kind ${v.returning ? "returning" : "new"}`, text: v.returning ? T.returning : T.fresh }),
      ]),
      h("td", { class: "col-1 page" }, [
        h("div", { class: "page-title", text: v.title || host(v.url) || "—" }),
        WEB.test(v.url) ? h("a", { href: v.url, target: "_blank", rel: "noopener noreferrer", class: "small muted page-url", text: v.url }) : null,
      ]),
      h("td", { class: "col-2 small", text: v.referrer ? host(v.referrer) : T.direct, title: v.referrer || null }),
      h("td", { class: "col-3 num", "data-since": v.started_at, text: since(v.started_at) }),
      h("td", { class: "col-4 num", text: String(v.pages_seen) }),
      h("td", { class: "col-5", text: location }),
      h("td", { class: "col-6", text: v.inbox.name }),
      h("td", { class: "col-7" }, [statusCell(v)]),
    ]);
    if (state.inviting !== v.id) return [tr];
    if (!state.inviteRow || state.inviteRow.dataset.id !== v.id) state.inviteRow = inviteRow(v);
    return [tr, state.inviteRow];
  }

  function statusCell(v) {
    if (v.chatting) {
      return h("span", { class: "visitor-status chatting" }, [
        h("span", { class: "badge", text: T.chatting }),
        v.conversation_id ? h("button", { type: "button", class: "link", text: T.openChat, onclick: () => openChat(v) }) : null,
      ]);
    }
    return h("span", { class: "visitor-status" }, [
      state.invited.has(v.id) ? h("span", { class: "badge invited", text: T.invited }) : h("span", { class: "muted small", text: T.browsing }),
      h("button", { type: "button", class: "primary invite", "data-visitor": v.id, text: T.invite, onclick: () => { state.inviting = v.id; state.inviteRow = null; render(); focusInvite(); } }),
    ]);
  }

  function inviteRow(v) {
    const text = h("textarea", { rows: "2", maxlength: "2000", "aria-label": T.invite, placeholder: T.placeholder, class: "invite-text" });
    text.value = T.placeholder;
    const error = h("div", { class: "invite-error", role: "alert" });
    const submit = () => {
      const dashboard = window.MessengerDashboard;
      if (!dashboard) return;
      sendButton.disabled = true;
      dashboard.command("visitor.invite", { visitor_id: v.id, body: text.value })
        .then(() => { state.invited.add(v.id); state.inviting = null; render(); })
        .catch((failure) => { error.textContent = fmt(T.failed, { m: failure.message }); sendButton.disabled = false; });
    };
    const sendButton = h("button", { type: "button", class: "primary send-invite", text: T.send, onclick: submit });
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
      if (event.key === "Escape") { event.stopPropagation(); state.inviting = null; render(); }
    });
    return h("tr", { class: "invite-row", "data-id": v.id }, [
      h("td", { colspan: "8" }, [
        h("div", { class: "invite-box" }, [
          text,
          h("div", { class: "invite-actions" }, [
            sendButton,
            h("button", { type: "button", class: "ghost", text: T.cancel, onclick: () => { state.inviting = null; render(); } }),
            error,
          ]),
        ]),
      ]),
    ]);
  }

  function focusInvite() {
    const text = body.querySelector(".invite-text");
    if (text) { text.focus(); text.select(); }
  }

  function openChat(v) {
    const dashboard = window.MessengerDashboard;
    toggle(false);
    if (dashboard && v.conversation_id) dashboard.openConversation(v.conversation_id);
  }

  window.MessengerVisitors = { onFrame, refresh: fetchList };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", build); else build();
})();
