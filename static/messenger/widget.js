/* Messenger visitor widget. Plain JS, no build step; all UI lives in a shadow root.
 * Loaded by widget-loader.js (docs/widget.md). Protocol: docs/protocol.md (events carry gapless
 * ids per conversation; resume on gaps). */
(() => {
"use strict";
const W = window, D = document;
if (W.__profiMessenger) return;
W.__profiMessenger = 1;

const script = D.currentScript || D.querySelector("script[data-widget-token][src*='/messenger/widget']");
const stub = W.ProfiMessenger?._stub ? W.ProfiMessenger : null;
const config = stub?._cfg || {};
const token = config.token || script?.getAttribute("data-widget-token");
const SERVER = config.origin || new URL(script.src, location.href).origin;
if (!token) return;

const MAX_FILES = 15;
const EMOJI = "😀 😂 😊 😍 😉 😎 🙂 🙁 😢 😡 👍 👎 🙏 👏 🎉 ❤️ 🔥 ✅ ❌ ❓ 💡 📎 📦 🚚".split(" ");
const TEXTS = {
  en: {
    title: "Chat with us", placeholder: "Type a message…", send: "Send", close: "Close chat", open: "Open chat",
    attach: "Attach files", emoji: "Emoji", connecting: "Connecting…", online: "Online", away: "Offline", reconnecting: "Reconnecting…",
    interrupted: "Reconnecting…", liveDown: "Live updates are interrupted. Your messages are still saved.",
    offline: "We are offline now. Leave a message and we will reply as soon as we can.",
    typing: "{name} is typing…", operator: "Operator", automatic: "Automatic reply", queue: "You are #{n} in the queue", wait: ", about {m} min",
    opened: "{name} opened your conversation", preview: "Operators can see what you type before you send it.",
    resolved: "This conversation is resolved.", newConv: "Start a new conversation", earlier: "Earlier conversation",
    rate: "How did we do?", comment: "Comment (optional)", sendRating: "Send rating", thanks: "Thank you for your feedback!",
    captcha: "Checking you're human…", captchaFailed: "We could not check that you're human.", name: "Name", email: "E-mail", phone: "Phone", save: "Save",
    saved: "Thanks, we will get back to you.", leaveContact: "Leave your contacts so that we can reply:",
    required: "{f}: required", badEmail: "{f}: not a valid e-mail", badPhone: "{f}: not a valid phone number",
    start: "Start chat", tooLarge: "{f}: too large (at most {s})", badType: "{f}: this file type is not allowed",
    tooMany: "At most 15 files per message", uploadFailed: "{f}: upload failed", failed: "Not sent",
    privacy: "Privacy policy", npsLow: "Not likely", npsHigh: "Very likely", drop: "Drop files here", remove: "Remove",
    stars: "{n} of 5", sent: "Sent", delivered: "Delivered", read: "Read", sending: "Sending",
    menu: "Menu", transcript: "E-mail me this conversation", transcriptSent: "The conversation is on its way to {e}.",
    uploading: "Uploading {f}", unread: "{n} unread", tooOften: "Too many requests. Please try again later.",
  },
  ru: {
    title: "Напишите нам", placeholder: "Введите сообщение…", send: "Отправить", close: "Закрыть чат", open: "Открыть чат",
    attach: "Прикрепить файлы", emoji: "Эмодзи", connecting: "Подключение…", online: "В сети", away: "Не в сети", reconnecting: "Переподключение…",
    interrupted: "Переподключение…", liveDown: "Обновления в реальном времени прервались. Ваши сообщения сохраняются.",
    offline: "Сейчас мы не в сети. Оставьте сообщение — мы ответим, как только сможем.",
    typing: "{name} печатает…", operator: "Оператор", automatic: "Автоответ", queue: "Вы №{n} в очереди", wait: ", примерно {m} мин",
    opened: "{name} открыл(а) ваш диалог", preview: "Операторы видят текст, который вы набираете, ещё до отправки.",
    resolved: "Диалог завершён.", newConv: "Начать новый диалог", earlier: "Предыдущий диалог",
    rate: "Оцените, пожалуйста, разговор", comment: "Комментарий (необязательно)", sendRating: "Отправить оценку",
    thanks: "Спасибо за отзыв!", captcha: "Проверяем, что вы не робот…", captchaFailed: "Не удалось проверить, что вы не робот.", name: "Имя", email: "E-mail",
    phone: "Телефон", save: "Сохранить", saved: "Спасибо, мы свяжемся с вами.",
    leaveContact: "Оставьте контакты, чтобы мы могли ответить:", required: "{f}: обязательное поле",
    badEmail: "{f}: неверный e-mail", badPhone: "{f}: неверный номер телефона", start: "Начать чат",
    tooLarge: "{f}: слишком большой файл (не больше {s})", badType: "{f}: такой тип файла не разрешён",
    tooMany: "Не больше 15 файлов в сообщении", uploadFailed: "{f}: не удалось загрузить", failed: "Не отправлено",
    privacy: "Политика конфиденциальности", npsLow: "Маловероятно", npsHigh: "Очень вероятно",
    drop: "Перетащите файлы сюда", remove: "Убрать", stars: "{n} из 5",
    sent: "Отправлено", delivered: "Доставлено", read: "Прочитано", sending: "Отправка",
    menu: "Меню", transcript: "Отправить диалог на e-mail", transcriptSent: "Диалог отправлен на {e}.",
    uploading: "Загрузка {f}", unread: "непрочитанных: {n}", tooOften: "Слишком много запросов. Попробуйте позже.",
  },
};

// --- storage
const KEY = "profimessenger:" + token;
const store = {
  get(name, fallback) {
    try { const v = localStorage.getItem(KEY + ":" + name); return v == null ? fallback : JSON.parse(v); } catch { return fallback; }
  },
  set(name, value) { try { localStorage.setItem(KEY + ":" + name, JSON.stringify(value)); } catch { /* private mode */ } },
};

// --- state
let boot = null, t = TEXTS.en, ws = null, socketSerial = 0, attempt = 0, reconnectTimer = 0, heartbeatTimer = 0;
let lastFrameAt = 0, currentId = null, opened = false, launcherVisible = true, available = true;
let typingSentAt = 0, typingConversation = null, agentTypingTimer = 0, readSent = 0, refSeq = 0, stopped = false;
let captcha = null, closeOwed = false; // a widget.close the socket was down for: sent at the next hello
const conversations = new Map(); // id -> {last, resuming, again, status, assignee}
const messagesById = new Map(); // message id -> element
const pendingByClient = new Map(); // client_id -> element
const visibleOut = new Set();
let outbox = store.get("outbox", []);
let staged = []; // uploaded attachments waiting for the next send
const listeners = {};

const fmt = (s, vars) => s.replace(/\{(\w+)\}/g, (_, k) => vars?.[k] ?? "");
const uuid = () => (crypto.randomUUID ? crypto.randomUUID() : "c" + Date.now().toString(36) + Math.random().toString(36).slice(2));
const abs = (url) => (url?.startsWith("/") ? SERVER + url : url);
const sizeText = (n) => (n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : Math.ceil(n / 1024) + " KB");

function h(tag, attrs, children) {
  const el = D.createElement(tag);
  for (const k in attrs || {}) {
    const v = attrs[k];
    if (v == null || v === false) continue;
    if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of [].concat(children || [])) if (c) el.append(c);
  return el;
}

// Rendered and sanitised by the server.
function serverHtml(html) {
  const el = h("div", { class: "text", dir: "auto" });
  el.innerHTML = html || "";
  for (const a of el.querySelectorAll("a")) { a.target = "_blank"; a.rel = "noopener noreferrer nofollow"; }
  return el;
}

function emit(name, detail) {
  for (const fn of (listeners[name] || []).slice()) { try { fn(detail); } catch (e) { console.error(e); } }
  W.dispatchEvent(new CustomEvent("profimessenger:" + name, { detail }));
}

// --- styles
const CSS = `
*{box-sizing:border-box}
.root{all:initial;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#111827;--c:#2563eb;--on:#fff;--ct:#2563eb}
button,input,textarea,select{font:inherit;color:inherit;margin:0}
button{cursor:pointer}
.launcher{position:fixed;bottom:20px;right:20px;width:56px;height:56px;border-radius:50%;border:0;background:var(--c);color:var(--on);box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483000;display:flex;align-items:center;justify-content:center;padding:0}
.launcher svg{width:28px;height:28px;fill:var(--on)}
[hidden]{display:none!important}
.badge{position:absolute;top:-2px;right:-2px;min-width:18px;height:18px;border-radius:9px;background:#dc2626;color:#fff;font-size:11px;line-height:18px;text-align:center;padding:0 4px}
.panel{position:fixed;bottom:88px;right:20px;width:370px;height:min(600px,calc(100vh - 110px));background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden;z-index:2147483001}
.left .launcher,.left .panel{right:auto;left:20px}
@media (max-width:480px){.panel{inset:0;width:100%;height:100%;border-radius:0}}
header{background:var(--c);color:var(--on);padding:12px 14px;display:flex;align-items:center;gap:8px}
header h2{font-size:16px;margin:0;font-weight:600;flex:1}
.conn{font-size:12px}
.x{background:transparent;border:0;color:var(--on);font-size:22px;line-height:1;padding:2px 6px;border-radius:4px}
.x.menub{font-size:18px}
.menu{position:absolute;top:48px;right:10px;background:#fff;border:1px solid #e5e7eb;border-radius:8px;box-shadow:0 4px 14px rgba(0,0,0,.15);z-index:1;padding:4px}
.menu button{background:transparent;border:0;padding:6px 10px;border-radius:6px;text-align:left;width:100%}
.menu button[aria-disabled=true]{color:#6b7280;cursor:default}
:focus-visible{outline:2px solid #111827;outline-offset:1px;box-shadow:0 0 0 3px #fff}
header :focus-visible{outline-color:var(--on);box-shadow:none}
.notice{padding:8px 12px;font-size:13px;background:#eff6ff;color:#1e3a8a;border-bottom:1px solid #dbeafe}
.notice.offline,.notice.live{background:#fef3c7;color:#78350f;border-color:#fde68a}
.log{flex:1 1 auto;min-height:150px;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f9fafb}
.greeting{align-self:flex-start;background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:8px 10px;max-width:85%}
.divider{text-align:center;font-size:12px;color:#6b7280;margin:6px 0}
.msg{display:flex;flex-direction:column;max-width:85%}
.msg.in{align-self:flex-end;align-items:flex-end}
.msg.out{align-self:flex-start}
.bubble{padding:8px 10px;border-radius:10px;background:#fff;border:1px solid #e5e7eb;word-wrap:break-word;overflow-wrap:anywhere}
.in .bubble{background:var(--c);color:var(--on);border-color:transparent}
.in .bubble a{color:var(--on)}
.bubble a{color:var(--ct)}
.who{font-size:11px;color:#6b7280;margin-bottom:2px}
.who,.notice,.typing{overflow-wrap:anywhere}
.meta{font-size:11px;color:#6b7280;margin-top:2px;display:flex;gap:4px}
.tick[data-state=delivered]{color:#1f2937}
.tick[data-state=read]{color:#1d4ed8}
.tick[data-state=failed]{color:#dc2626}
.files{display:flex;flex-wrap:wrap;gap:4px;margin-top:4px}
.files img{max-width:200px;max-height:160px;border-radius:6px;display:block}
.files a{font-size:13px}
.extra{flex:0 1 auto;min-height:0;overflow-y:auto}
.typing{font-size:12px;color:#6b7280;padding:0 12px 4px;min-height:16px;background:#f9fafb}
.box{padding:10px 12px;border-top:1px solid #e5e7eb;background:#fff;display:flex;flex-direction:column;gap:6px}
.box label{font-size:12px;color:#374151;display:flex;flex-direction:column;gap:2px}
.box input,.box textarea,.box select{border:1px solid #6b7280;border-radius:6px;padding:6px 8px;background:#fff}
.err{color:#b91c1c;font-size:12px}
.btn{background:var(--c);color:var(--on);border:0;border-radius:6px;padding:7px 12px;align-self:flex-start}
.btn.ghost{background:#fff;color:var(--ct);border:1px solid var(--ct)}
.scale{display:flex;flex-wrap:wrap;gap:4px}
.scale button{border:1px solid #6b7280;background:#fff;border-radius:6px;min-width:30px;padding:4px 6px}
.scale button.lit{background:var(--c);color:var(--on);border-color:var(--c)}
.composer{border-top:1px solid #e5e7eb;background:#fff;padding:8px;display:flex;flex-direction:column;gap:6px}
.row{display:flex;gap:6px;align-items:flex-end}
textarea.input{flex:1;resize:none;border:1px solid #6b7280;border-radius:8px;padding:8px;min-height:38px;max-height:120px;background:#fff}
.icon{background:transparent;border:0;font-size:18px;padding:6px;border-radius:6px;color:#4b5563}
.sendb{background:var(--c);color:var(--on);border:0;border-radius:8px;padding:8px 12px}
.emoji{display:grid;grid-template-columns:repeat(8,1fr);gap:2px;padding:4px;border:1px solid #e5e7eb;border-radius:8px}
.emoji button{background:transparent;border:0;font-size:18px;padding:2px}
.staged{display:flex;flex-wrap:wrap;gap:6px}
.chip{display:flex;align-items:center;gap:4px;border:1px solid #e5e7eb;border-radius:6px;padding:2px 4px;font-size:12px;max-width:160px}
.chip img{width:32px;height:32px;object-fit:cover;border-radius:4px}
.chip span{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.chip button{border:0;background:transparent;padding:0 2px}
.chip progress{width:48px;height:6px}
.privacy{font-size:11px;color:#6b7280;padding:0 10px 6px;background:#fff}
.privacy a{color:#6b7280}
.hp{position:absolute!important;left:-10000px!important;width:1px;height:1px;overflow:hidden}
.drop{position:absolute;inset:0;background:rgba(37,99,235,.12);border:2px dashed var(--c);display:flex;align-items:center;justify-content:center;font-weight:600;color:var(--ct);pointer-events:none}
`;

// --- UI
let host, root, ui = {};
const ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>';

function buildUI() {
  const s = boot.settings, w = s.widget || {};
  host = D.createElement("profi-messenger");
  // Inline !important beats any host rule aimed at the element itself.
  host.style.setProperty("all", "initial", "important");
  const shadow = host.attachShadow({ mode: "open" });
  root = h("div", { class: "root" + (w.position === "left" ? " left" : ""), "data-conn": "connecting", lang: s.language });
  for (const [name, value] of [["--c", w.color], ["--on", w.on_color], ["--ct", w.text_color]]) if (value) root.style.setProperty(name, value);
  shadow.append(h("style", { text: CSS }), root);
  ui.launcher = h("button", { type: "button", class: "launcher", "aria-label": t.open, "aria-expanded": "false", onclick: () => api.toggle() });
  ui.launcher.innerHTML = ICON;
  ui.badge = h("span", { class: "badge", hidden: true, "aria-hidden": "true" });
  ui.launcher.append(ui.badge);
  ui.conn = h("span", { class: "conn", role: "status", text: t.connecting });
  ui.close = h("button", { type: "button", class: "x", "aria-label": t.close, text: "×", onclick: () => api.close() });
  ui.menuItem = h("button", { type: "button", role: "menuitem", class: "transcript-item", text: t.transcript, onclick: () => {
    if (ui.menuItem.getAttribute("aria-disabled") === "true") return;
    toggleMenu(false);
    showTranscript(currentId);
  } });
  ui.menuButton = h("button", { type: "button", class: "x menub", "aria-label": t.menu, "aria-haspopup": "menu", "aria-expanded": "false", text: "⋯", onclick: () => toggleMenu() });
  ui.menu = h("div", { class: "menu", role: "menu", hidden: true, onkeydown: (e) => rove(Array.from(ui.menu.children), e, 1), onfocusout: onMenuFocusOut }, [ui.menuItem]);
  ui.offline = h("div", { class: "notice offline", hidden: true, role: "status" });
  ui.live = h("div", { class: "notice live", hidden: true, role: "status", text: t.liveDown });
  ui.queue = h("div", { class: "notice queue", hidden: true, role: "status" });
  ui.info = h("div", { class: "notice info", hidden: true, role: "status" });
  ui.preview = h("div", { class: "notice preview", hidden: !s.features?.typing_preview, text: t.preview });
  ui.log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions", tabindex: "0" });
  if (w.greeting) ui.log.append(h("div", { class: "greeting", text: w.greeting }));
  ui.typing = h("div", { class: "typing", "aria-live": "polite" });
  ui.extra = h("div", { class: "extra" });
  ui.composer = buildComposer();
  const privacy = s.privacy || {};
  const privacyLink = privacy.url && h("a", { href: privacy.url, target: "_blank", rel: "noopener noreferrer", text: t.privacy });
  const privacyNote = (privacy.text || privacy.url) && h("div", { class: "privacy" }, [privacy.text && privacy.text + " ", privacyLink]);
  ui.panel = h("div", { class: "panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "pm-title", hidden: true, onkeydown: onPanelKey }, [
    h("header", {}, [h("h2", { id: "pm-title", text: w.title || t.title }), ui.conn, ui.menuButton, ui.close]),
    ui.menu, ui.live, ui.offline, ui.queue, ui.info, ui.preview, ui.log, ui.typing, ui.extra, ui.composer, privacyNote,
  ]);
  setupDrop(ui.panel);
  root.append(ui.panel, ui.launcher);
  (D.body || D.documentElement).append(host);
  observer = new IntersectionObserver(onIntersect, { root: ui.log, threshold: 0.6 });
}

function buildComposer() {
  ui.input = h("textarea", { class: "input", dir: "auto", rows: "1", "aria-label": t.placeholder, placeholder: t.placeholder, onkeydown: onInputKey, oninput: onTyping, onblur: stopTyping, onpaste: onPaste });
  ui.file = h("input", { type: "file", multiple: true, hidden: true, tabindex: "-1", onchange: () => { addFiles(ui.file.files); ui.file.value = ""; } });
  // A honeypot: bots fill it in, people never see it.
  ui.honeypot = h("input", { class: "hp", type: "text", name: "website", tabindex: "-1", autocomplete: "off", "aria-hidden": "true" });
  ui.emoji = h("div", { class: "emoji", hidden: true, role: "group", "aria-label": t.emoji, onkeydown: (e) => rove(Array.from(ui.emoji.children), e, 8) },
    EMOJI.map((e, i) => h("button", { type: "button", text: e, tabindex: i ? "-1" : "0", onclick: () => insertEmoji(e) })));
  ui.staged = h("div", { class: "staged", hidden: true });
  ui.fileErr = h("div", { class: "err", role: "alert", hidden: true });
  const features = boot.settings.features || {};
  return h("div", { class: "composer" }, [
    ui.emoji, ui.staged, ui.fileErr, ui.honeypot,
    h("div", { class: "row" }, [
      features.attachments !== false && h("button", { type: "button", class: "icon attach", "aria-label": t.attach, text: "📎", onclick: () => ui.file.click() }),
      features.emoji !== false && (ui.emojiToggle = h("button", { type: "button", class: "icon emoji-toggle", "aria-label": t.emoji, "aria-expanded": "false", text: "🙂", onclick: toggleEmoji })),
      ui.input, ui.file,
      h("button", { type: "button", class: "sendb", text: t.send, onclick: submit }),
    ]),
  ]);
}

// Escape closes the innermost of menu, emoji picker, panel; the focus returns to its opener.
function onPanelKey(e) {
  if (e.key !== "Escape" || e.isComposing) return;
  e.stopPropagation();
  if (!ui.menu.hidden) { toggleMenu(false); ui.menuButton.focus(); }
  else if (!ui.emoji.hidden) { closeEmoji(); ui.emojiToggle.focus(); }
  else api.close();
}
function onInputKey(e) {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
}
function toggleEmoji() {
  ui.emoji.hidden = !ui.emoji.hidden;
  ui.emojiToggle.setAttribute("aria-expanded", String(!ui.emoji.hidden));
  if (!ui.emoji.hidden) ui.emoji.querySelector("[tabindex='0']").focus();
}
function closeEmoji() {
  ui.emoji.hidden = true;
  if (ui.emojiToggle) ui.emojiToggle.setAttribute("aria-expanded", "false");
}
function rove(buttons, e, columns) {
  const i = buttons.indexOf(e.target), last = buttons.length - 1;
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns, Home: -i, End: last - i }[e.key];
  if (i < 0 || step == null) return -1;
  const next = Math.min(last, Math.max(0, i + step));
  e.preventDefault();
  buttons.forEach((b, j) => b.setAttribute("tabindex", j === next ? "0" : "-1"));
  buttons[next].focus();
  return next;
}
function onMenuFocusOut(e) {
  if (e.relatedTarget && (ui.menu.contains(e.relatedTarget) || e.relatedTarget === ui.menuButton)) return;
  toggleMenu(false);
}
function insertEmoji(e) {
  const el = ui.input, at = el.selectionStart;
  el.value = el.value.slice(0, at) + e + el.value.slice(el.selectionEnd);
  el.focus();
  el.selectionStart = el.selectionEnd = at + e.length;
}

function setConn(state) {
  root.setAttribute("data-conn", state);
  // Connected while nobody can answer: the header agrees with the offline banner.
  ui.conn.textContent = state === "online" && !available ? t.away : t[state];
  ui.live.hidden = state !== "interrupted";
}

function setAvailability(data) {
  if (data.operators_available == null) return;
  available = !!data.operators_available;
  const off = boot.settings.offline || {};
  ui.offline.hidden = available;
  if (root.getAttribute("data-conn") === "online") setConn("online");
  if (!available) ui.offline.textContent = off.message || t.offline;
  offerContactForm();
}

// Only while nobody can answer and the server has no e-mail or phone; never beside the pre-chat form.
function offerContactForm() {
  const off = boot.settings.offline || {};
  const form = ui.extra.querySelector("form.contact");
  const known = boot.contact?.email || boot.contact?.phone;
  const wanted = !available && off.collect_contact !== false && !store.get("contactSaved") && !known;
  if (wanted && !ui.extra.querySelector(".prechat")) showContactForm();
  else form?.remove();
}

function setQueue(queue, conversation) {
  const on = boot.settings.features && boot.settings.features.queue_position !== false;
  if (!on || !queue || conversation?.assignee) { ui.queue.hidden = true; return; }
  let text = fmt(t.queue, { n: queue.position });
  if (queue.expected_wait_seconds) text += fmt(t.wait, { m: Math.max(1, Math.round(queue.expected_wait_seconds / 60)) });
  ui.queue.textContent = text;
  ui.queue.hidden = false;
}

function info(text) {
  ui.info.textContent = text;
  ui.info.hidden = !text;
}

// --- forms (pre-chat, offline contact, rating, captcha, resolved)
function field(def) {
  const label = def.label || (["name", "email", "phone"].includes(def.name) ? t[def.name] : def.name);
  let input;
  if (def.type === "select") input = h("select", { name: def.name }, [h("option", { value: "", text: "—" }), ...(def.options || []).map((o) => h("option", { value: o, text: o }))]);
  else input = h("input", { name: def.name, type: def.type === "email" ? "email" : def.type === "phone" ? "tel" : "text", autocomplete: def.type === "email" ? "email" : def.type === "phone" ? "tel" : def.name === "name" ? "name" : "off" });
  if (def.required) input.setAttribute("aria-required", "true");
  return { def, label, input, el: h("label", {}, [label, def.required ? h("span", { "aria-hidden": "true", text: " *" }) : null, input]) };
}

function validate(fields) {
  for (const f of fields) {
    const v = f.input.value.trim(), type = f.def.type;
    const text = f.def.required && !v ? t.required
      : v && type === "email" && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v) ? t.badEmail
        : v && type === "phone" && !/^[+\d\s()-]{5,40}$/.test(v) ? t.badPhone : "";
    if (text) return { field: f, text: fmt(text, { f: f.label }) };
  }
  return null;
}

function contactFrame(fields) {
  const frame = { type: "contact.update", custom: {} };
  for (const f of fields) {
    const v = f.input.value.trim();
    if (!v) continue;
    if (["name", "email", "phone"].includes(f.def.name)) frame[f.def.name] = v;
    else frame.custom[f.def.name] = v;
  }
  if (!Object.keys(frame.custom).length) delete frame.custom;
  return frame;
}

function requestFor(err, frame, onDone) {
  request(frame, (answer) => { if (answer.type === "error") err.textContent = answer.code === "rate_limited" ? t.tooOften : answer.message; else onDone(answer); });
}

let formSeq = 0;
function formBox(cls, title, fields, buttonText, frameOf, onDone) {
  const errId = "pm-err-" + ++formSeq;
  const err = h("div", { class: "err", role: "alert", id: errId });
  const form = h("form", { class: "box " + cls, novalidate: true }, [
    title && h("div", { text: title }), ...fields.map((f) => f.el), err,
    h("button", { class: "btn", type: "submit", text: buttonText }),
  ]);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const problem = validate(fields);
    err.textContent = problem ? problem.text : "";
    for (const f of fields) {
      f.input.setAttribute("aria-invalid", String(!!problem && problem.field === f));
      f.input.setAttribute("aria-describedby", errId);
    }
    if (problem) problem.field.input.focus();
    else requestFor(err, frameOf(), (answer) => onDone(answer, form));
  });
  return form;
}

function showContactForm() {
  if (ui.extra.querySelector(".contact")) return;
  // Not asked again: what the visitor already told us (the pre-chat form).
  const fields = [{ name: "name", type: "text" }, { name: "email", type: "email" }, { name: "phone", type: "phone" }]
    .filter((def) => !boot.contact?.[def.name]).map(field);
  ui.extra.append(formBox("contact", t.leaveContact, fields, t.save, () => contactFrame(fields), (frame, form) => {
    store.set("contactSaved", 1);
    boot.contact = frame.data.contact;
    form.replaceWith(h("div", { class: "notice", text: t.saved }));
  }));
}

function needsPreChat() {
  const s = boot.settings;
  return s.features?.pre_chat_form && !store.get("prechatDone") && !boot.history.some((c) => c.messages.length);
}

function showPreChat() {
  if (ui.extra.querySelector(".prechat")) return;
  const defs = boot.settings.pre_chat?.fields || [];
  const fields = (defs.length ? defs : [{ name: "name", type: "text", required: true }, { name: "email", type: "email", required: true }]).map(field);
  ui.composer.hidden = true;
  ui.extra.querySelector("form.contact")?.remove();
  ui.extra.append(formBox("prechat", "", fields, t.start, () => contactFrame(fields), (frame, form) => {
    store.set("prechatDone", 1);
    boot.contact = frame.data.contact;
    form.remove();
    ui.composer.hidden = false;
    offerContactForm();
    ui.input.focus();
    // Messages the server held back for the form go out now.
    for (const item of outbox) item.sentOn = 0;
    flush();
  }));
}

function showRating(conversationId, scale) {
  ui.extra.querySelector(".rating")?.remove();
  let score = null;
  const nps = scale === "nps", min = nps ? 0 : 1;
  const buttons = [];
  const choose = (b) => {
    score = +b.dataset.score;
    buttons.forEach((x) => {
      x.setAttribute("aria-checked", String(x === b));
      x.setAttribute("tabindex", x === b ? "0" : "-1");
      x.classList.toggle("lit", nps ? x === b : +x.dataset.score <= score);
    });
  };
  for (let i = min; i <= (nps ? 10 : 5); i++) {
    const b = h("button", { type: "button", role: "radio", "aria-checked": "false", tabindex: i === min ? "0" : "-1", "data-score": i, "aria-label": nps ? String(i) : fmt(t.stars, { n: i }), text: nps ? String(i) : "★", onclick: () => choose(b) });
    buttons.push(b);
  }
  const comment = h("textarea", { name: "comment", rows: "2", "aria-label": t.comment, placeholder: t.comment });
  const err = h("div", { class: "err", role: "alert" });
  const form = h("form", { class: "box rating", "data-scale": scale, "data-conversation": conversationId }, [
    h("div", { id: "pm-rate", text: t.rate }),
    h("div", { class: "scale", role: "radiogroup", "aria-labelledby": "pm-rate", onkeydown: (e) => { const n = rove(buttons, e, 1); if (n >= 0) choose(buttons[n]); } }, buttons),
    nps && h("div", { class: "meta", text: "0 — " + t.npsLow + ", 10 — " + t.npsHigh }),
    comment, err, h("button", { class: "btn", type: "submit", text: t.sendRating }),
  ]);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (score == null) { err.textContent = fmt(t.required, { f: t.rate }); buttons[0].focus(); return; }
    requestFor(err, { type: "conversation.rate", conversation_id: conversationId, score, comment: comment.value.trim() }, () => {
      form.replaceWith(thanks(conversationId));
    });
  });
  ui.extra.append(form);
}

const thanks = (id) => h("div", { class: "notice thanks", role: "status", "data-conversation": id, text: t.thanks });

function showResolved(show) {
  const bar = ui.extra.querySelector(".resolved");
  if (!show) bar?.remove();
  else if (!bar) {
    ui.extra.prepend(h("div", { class: "box resolved" }, [
      h("div", { text: t.resolved }),
      h("button", { type: "button", class: "btn ghost newconv", text: t.newConv, onclick: startNew }),
      h("button", { type: "button", class: "btn ghost transcript-btn", text: t.transcript, onclick: () => showTranscript(currentId) }),
    ]));
  }
}

function toggleMenu(open) {
  open = open == null ? ui.menu.hidden : open;
  ui.menu.hidden = !open;
  // aria-disabled, not disabled: the open menu always holds the focus.
  ui.menuItem.setAttribute("aria-disabled", String(!currentId));
  ui.menuButton.setAttribute("aria-expanded", String(open));
  if (open) ui.menuItem.focus();
}

// The conversation by e-mail, to the contact's address (editable) or one typed.
function showTranscript(conversationId) {
  const shown = ui.extra.querySelector("form.transcript");
  if (shown) { shown.querySelector("input").focus(); return; }
  if (!conversationId) return;
  const f = field({ name: "email", type: "email", required: true });
  f.input.value = boot.contact?.email || "";
  const frame = () => ({ type: "conversation.transcript", conversation_id: conversationId, email: f.input.value.trim() });
  ui.extra.append(formBox("transcript", t.transcript, [f], t.send, frame, (answer, form) => {
    form.replaceWith(h("div", { class: "notice transcript-sent", role: "status", text: fmt(t.transcriptSent, { e: answer.data.transcript.email }) }));
  }));
  f.input.focus();
}

function startNew() {
  request({ type: "conversation.new" }, () => {
    showResolved(false);
    ui.extra.querySelector(".rating, .thanks")?.remove();
    ui.log.append(h("div", { class: "divider", text: "— " + t.newConv + " —" }));
    currentId = null;
    ui.input.focus();
  });
}

// ALTCHA: find n with SHA-256(salt + n) = challenge. Awaiting each digest keeps the page
// responsive; plain HTTP has no crypto.subtle, so sha256() below yields every thousand tries.
async function solveAltcha({ algorithm, challenge, maxnumber, salt, signature }) {
  const want = challenge.match(/../g).map((x) => parseInt(x, 16)), enc = new TextEncoder();
  const subtle = crypto.subtle;
  for (let n = 0; n <= maxnumber; n++) {
    const bytes = enc.encode(salt + n);
    const d = subtle ? new Uint8Array(await subtle.digest("SHA-256", bytes)) : sha256(bytes);
    if (d.every((b, i) => b === want[i])) return btoa(JSON.stringify({ algorithm, challenge, number: n, salt, signature }));
    if (!subtle && n % 1000 === 999) await new Promise((r) => setTimeout(r));
  }
  throw new Error("unsolved");
}

// SHA-256 (FIPS 180-4); H, K: fractions of the first primes' square and cube roots.
let H0, K;
const ror = (x, n) => (x >>> n) | (x << (32 - n));
function sha256(bytes) {
  if (!K) {
    H0 = []; K = [];
    for (let p = 2; K.length < 64; p++) {
      let prime = true;
      for (let f = 2; f * f <= p; f++) if (p % f === 0) prime = false;
      if (!prime) continue;
      if (H0.length < 8) H0.push((p ** 0.5 * 2 ** 32) | 0);
      K.push((p ** (1 / 3) * 2 ** 32) | 0);
    }
  }
  const len = bytes.length, m = new Uint32Array(((len + 8) >> 6) * 16 + 16), w = new Uint32Array(64), h = H0.slice();
  for (let i = 0; i < len; i++) m[i >> 2] |= bytes[i] << (24 - 8 * (i & 3));
  m[len >> 2] |= 0x80 << (24 - 8 * (len & 3));
  m[m.length - 1] = len * 8;
  for (let j = 0; j < m.length; j += 16) {
    for (let i = 0; i < 64; i++) {
      const x = w[i - 15], y = w[i - 2];
      w[i] = i < 16 ? m[j + i] : w[i - 16] + (ror(x, 7) ^ ror(x, 18) ^ (x >>> 3)) + w[i - 7] + (ror(y, 17) ^ ror(y, 19) ^ (y >>> 10));
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const t2 = ((ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    [a, b, c, d, e, f, g, k].forEach((v, i) => (h[i] = (h[i] + v) | 0));
  }
  return Uint8Array.from({ length: 32 }, (_, i) => h[i >> 2] >>> (24 - 8 * (i & 3)));
}

// Turnstile or hCaptcha: the provider's script, loaded only now; both render the same way.
function providerToken(c, box) {
  return new Promise((resolve, reject) => {
    const render = () => window[c.provider].render(box, { sitekey: c.site_key, callback: resolve, "error-callback": reject });
    if (window[c.provider]) return render();
    D.head.append(h("script", { src: c.script, async: true, onload: render, onerror: reject }));
  });
}

function showCaptcha(challenge) {
  if (captcha && captcha.answer == null) return; // one check at a time; its answer serves every queued message
  // A refused answer (expired, used) brings a new challenge: a few tries, not an endless loop.
  const tries = (captcha?.tries || 0) + 1;
  captcha = { answer: null, tries };
  ui.extra.querySelector(".captcha")?.remove();
  const box = h("div", { class: "box captcha", role: "status" }, [h("div", { text: t.captcha })]);
  ui.extra.append(box);
  const work = tries > 3 ? Promise.reject() : challenge.provider === "altcha" ? solveAltcha(challenge) : providerToken(challenge, box);
  work.then((answer) => {
    captcha.answer = answer;
    box.remove();
    for (const item of outbox) item.sentOn = 0;
    flush();
    // One file after another: the first starts the conversation, the others join it.
    staged.filter((s) => s.waitsForCaptcha).reduce((done, s) => done.then(() => upload(s)), Promise.resolve());
  }, () => {
    captcha = null;
    box.firstChild.textContent = t.captchaFailed;
  });
}

// --- messages
function conv(id) {
  let c = conversations.get(id);
  if (!c) { c = { last: 0, resuming: false, again: false, status: "open" }; conversations.set(id, c); }
  return c;
}

function tickState(m) {
  return m.read_at ? "read" : m.delivered_at ? "delivered" : "sent";
}

function setTick(el, state) {
  const tick = el.querySelector(".tick");
  if (!tick) return;
  tick.setAttribute("data-state", state);
  tick.textContent = { pending: "◷", sent: "✓", delivered: "✓", read: "✓✓", failed: "!" }[state];
  tick.setAttribute("role", "img");
  tick.setAttribute("aria-label", t[state === "pending" ? "sending" : state]);
}

function renderFiles(list) {
  if (!list?.length) return null;
  return h("div", { class: "files" }, list.map((a) => {
    const url = abs(a.url);
    if (a.is_image && url) return h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, [h("img", { src: url, alt: a.name, width: a.width || null, height: a.height || null, loading: "lazy" })]);
    return h("a", { href: url, target: "_blank", rel: "noopener noreferrer", download: a.name, text: "📄 " + a.name + " (" + sizeText(a.size || 0) + ")" });
  }));
}

// A person by name; the inbox's automatic replies (bot, system) never pass for an operator.
function senderLabel(sender) {
  if (sender?.type && sender.type !== "user") return t.automatic;
  return sender?.name || t.operator;
}

function messageEl(m, pending) {
  const mine = m.direction === "in";
  // `body` is never inserted as HTML.
  const text = pending ? h("div", { class: "text", dir: "auto", text: m.body }) : serverHtml(m.content);
  const el = h("div", { class: "msg " + (mine ? "in" : "out"), "data-client-id": m.client_id || null, "data-id": m.id || null }, [
    !mine && h("div", { class: "who", text: senderLabel(m.sender) }),
    h("div", { class: "bubble" }, [text, renderFiles(m.attachments)]),
    h("div", { class: "meta" }, [
      h("time", { datetime: m.created_at || null, text: new Date(m.created_at || Date.now()).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) }),
      mine && h("span", { class: "tick" }),
    ]),
  ]);
  if (mine) setTick(el, pending ? "pending" : tickState(m));
  return el;
}

/** Insert or update a stored message; returns true when it is new to the page. */
function upsert(m, live) {
  if (m.conversation_id > (currentId || 0)) currentId = m.conversation_id;
  const stored = messagesById.has(m.id);
  const pending = m.client_id && pendingByClient.get(m.client_id);
  const existing = messagesById.get(m.id) || pending;
  const el = messageEl(m, false);
  if (existing) {
    const prev = existing.querySelector(".tick");
    const state = prev?.getAttribute("data-state");
    existing.replaceWith(el);
    if (state === "read" || (state === "delivered" && tickState(m) === "sent")) setTick(el, state);
  } else {
    // The first message of a newer conversation (started in another tab, say) under the old one's.
    const last = ui.log.lastElementChild;
    if (last?.__cid && m.conversation_id > last.__cid) ui.log.append(h("div", { class: "divider", text: "— " + t.newConv + " —" }));
    ui.log.append(el);
  }
  if (m.client_id) pendingByClient.delete(m.client_id);
  el.__cid = m.conversation_id;
  messagesById.set(m.id, el);
  if (m.direction === "out") {
    el.dataset.out = m.id;
    observer.observe(el);
  }
  if (!existing) scrollDown();
  // Once per message: live, or the visitor's own when stored (its ack or its event, the first).
  if (!stored && (live || pending)) emit("message", { message: m });
  return !existing;
}

function scrollDown() {
  ui.log.scrollTop = ui.log.scrollHeight;
}

function markOwn(upTo, state) {
  for (const [id, el] of messagesById) {
    if (id > upTo || !el.classList.contains("in")) continue;
    const cur = el.querySelector(".tick").getAttribute("data-state");
    if (state === "read" || cur === "sent") setTick(el, state);
  }
}

// --- read marking: only what the visitor can actually see
let observer = null;
function onIntersect(entries) {
  for (const e of entries) {
    const id = +e.target.dataset.out;
    if (e.isIntersecting) visibleOut.add(id); else visibleOut.delete(id);
  }
  markRead();
}

function markRead() {
  if (!opened || D.visibilityState !== "visible" || ws?.readyState !== 1) return;
  let top = 0;
  for (const id of visibleOut) if (id > top) top = id;
  if (top > readSent) {
    const conversationId = messagesById.get(top)?.__cid;
    readSent = top;
    if (conversationId) send({ type: "conversation.read", conversation_id: conversationId, up_to_message_id: top });
  }
  updateBadge();
}

let unread = 0;
function updateBadge() {
  if (opened) unread = 0;
  ui.badge.hidden = !unread;
  ui.badge.textContent = String(unread);
  // The launcher's name carries the count: the badge is aria-hidden.
  ui.launcher.setAttribute("aria-label", unread ? t.open + " (" + fmt(t.unread, { n: unread }) + ")" : t.open);
}

// --- sending
function saveOutbox() {
  store.set("outbox", outbox.map(({ sentOn, ...rest }) => rest));
}

function submit() {
  const body = ui.input.value.trim();
  if (!body && !staged.length) return;
  if (staged.some((s) => !s.attachment)) return; // uploads still running
  if (ui.honeypot.value) { ui.input.value = ""; return; }
  const item = { client_id: uuid(), body, attachment_ids: staged.map((s) => s.attachment.id), attachments: staged.map((s) => s.attachment), created_at: new Date().toISOString() };
  staged.forEach((s) => s.url && URL.revokeObjectURL(s.url));
  staged = [];
  renderStaged();
  ui.input.value = "";
  closeEmoji();
  stopTyping();
  outbox.push(item);
  saveOutbox();
  renderPending(item);
  flush();
}

function renderPending(item) {
  if (pendingByClient.has(item.client_id)) return;
  const el = messageEl({ ...item, direction: "in" }, true);
  pendingByClient.set(item.client_id, el);
  ui.log.append(el);
  scrollDown();
}

function flush() {
  if (ws?.readyState !== 1 || !ws.ready) return;
  for (const item of outbox) {
    if (item.sentOn === socketSerial) continue;
    item.sentOn = socketSerial;
    const frame = { type: "message.send", ref: "m:" + item.client_id, client_id: item.client_id, body: item.body };
    if (item.attachment_ids?.length) frame.attachment_ids = item.attachment_ids;
    if (captcha?.answer != null) frame.captcha = captcha.answer;
    send(frame);
  }
}

function onSendResult(clientId, frame) {
  const index = outbox.findIndex((i) => i.client_id === clientId);
  const item = outbox[index];
  if (frame.type === "ack") {
    if (index >= 0) outbox.splice(index, 1);
    saveOutbox();
    if (captcha?.answer != null) captcha = null;
    if (frame.data.conversation_id) currentId = frame.data.conversation_id;
    upsert(frame.data.message, false);
    return;
  }
  if (!item) return;
  if (frame.code === "captcha_required" && frame.challenge) {
    item.sentOn = -1;
    showCaptcha(frame.challenge);
    return;
  }
  if (frame.code === "pre_chat_required") {
    // The message waits in the outbox until the pre-chat form is sent.
    item.sentOn = -1;
    showPreChat();
    return;
  }
  if (["rate_limited", "unavailable", "server_error"].includes(frame.code)) {
    setTimeout(() => { item.sentOn = 0; flush(); }, Math.max(1, frame.retry_after || 2) * 1000);
    return;
  }
  // Refused (invalid, forbidden, conflict…): shown as failed, dropped from the outbox.
  outbox.splice(index, 1);
  saveOutbox();
  const el = pendingByClient.get(clientId);
  if (el) {
    setTick(el, "failed");
    el.querySelector(".meta").append(h("span", { class: "err", text: t.failed + ": " + (frame.message || frame.code) }));
  }
}

// --- typing
function onTyping() {
  const features = boot.settings.features || {};
  const id = currentId, status = id && conv(id).status;
  if (!id || status === "resolved" || status === "closed" || !ui.input.value) return;
  const now = Date.now(), every = features.typing_preview ? 1000 : 3000;
  if (now - typingSentAt < every) return;
  typingSentAt = now;
  typingConversation = id;
  const frame = { type: "typing.start", conversation_id: id };
  // The server refuses a lone surrogate: never cut an emoji in two, nor pass on a broken paste.
  if (features.typing_preview) frame.preview = ui.input.value.slice(0, 2000).replace(/[\ud800-\udbff]$/, "").toWellFormed();
  send(frame);
}

function stopTyping() {
  if (!typingConversation) return;
  send({ type: "typing.stop", conversation_id: typingConversation });
  typingConversation = null;
  typingSentAt = 0;
}

function agentTyping(on, name) {
  clearTimeout(agentTypingTimer);
  ui.typing.textContent = on ? fmt(t.typing, { name: name || t.operator }) : "";
  if (on) agentTypingTimer = setTimeout(() => (ui.typing.textContent = ""), 10000);
}

// --- attachments
function fileError(text) {
  ui.fileErr.textContent = text;
  ui.fileErr.hidden = !text;
}

function addFiles(files) {
  const limits = boot.settings.attachments || {};
  fileError("");
  for (const file of files || []) {
    if (staged.length >= MAX_FILES) { fileError(t.tooMany); break; }
    const name = file.name || "file";
    if (limits.max_size && file.size > limits.max_size) { fileError(fmt(t.tooLarge, { f: name, s: sizeText(limits.max_size) })); continue; }
    // The browser guesses by name; the server decides by content. Unknown types go to the server.
    if (file.type && limits.allowed_types && !limits.allowed_types.includes(file.type)) { fileError(fmt(t.badType, { f: name })); continue; }
    const entry = { file, name, url: file.type.startsWith("image/") ? URL.createObjectURL(file) : null, attachment: null };
    staged.push(entry);
    upload(entry);
  }
  renderStaged();
}

function upload(entry) {
  const form = new FormData();
  form.append("widget_token", token);
  form.append("token", boot.session_token);
  // A file can start the conversation: past the CAPTCHA threshold it carries the solution too.
  const answer = captcha?.answer;
  if (answer != null) form.append("captcha", answer);
  form.append("file", entry.file, entry.name);
  entry.waitsForCaptcha = false;
  entry.progress = 0;
  return post(SERVER + "/api/widget/attachments/", form, (percent) => {
    entry.progress = percent;
    if (entry.bar) entry.bar.value = percent;
  })
    .then(({ ok, data }) => {
      if (!ok && data?.code === "captcha_required" && data.challenge) {
        entry.waitsForCaptcha = true; // uploaded again once the challenge is solved (showCaptcha)
        showCaptcha(data.challenge);
        return;
      }
      if (!ok) throw Object.assign(new Error(data?.detail || ""), { data });
      if (answer != null && captcha?.answer === answer) captcha = null; // one solution, one conversation
      entry.attachment = data.attachment;
      renderStaged();
    })
    .catch((e) => {
      staged = staged.filter((s) => s !== entry);
      // The server's refusals the widget can word in the visitor's language; others as they come.
      const f = entry.name, code = e.data?.code;
      fileError(code === "file_type_not_allowed" ? fmt(t.badType, { f }) : code === "file_too_large" ? fmt(t.tooLarge, { f, s: sizeText(e.data.max_size) })
        : fmt(t.uploadFailed, { f }) + (e.message ? ": " + e.message : ""));
      renderStaged();
    });
}

// XMLHttpRequest, not fetch: only it reports upload progress.
function post(url, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && e.total) onProgress(Math.round((e.loaded / e.total) * 100)); };
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { /* not JSON: a proxy's error page */ }
      resolve({ ok: xhr.status >= 200 && xhr.status < 300, data });
    };
    xhr.onerror = () => reject(new Error(""));
    xhr.send(body);
  });
}

function renderStaged() {
  ui.staged.replaceChildren(...staged.map((s) => h("div", { class: "chip", "data-ready": s.attachment ? "1" : "0" }, [
    s.url && h("img", { src: s.url, alt: "" }),
    h("span", { text: s.name }),
    !s.attachment && (s.bar = h("progress", { max: "100", value: String(s.progress || 0), "aria-label": fmt(t.uploading, { f: s.name }) })),
    h("button", { type: "button", "aria-label": t.remove + " " + s.name, text: "×", onclick: () => { staged = staged.filter((x) => x !== s); renderStaged(); } }),
  ])));
  ui.staged.hidden = !staged.length;
}

function onPaste(e) {
  const files = e.clipboardData?.files;
  if (files?.length) { e.preventDefault(); addFiles(files); }
}

function setupDrop(panel) {
  let overlay = null, depth = 0;
  const has = (e) => Array.from(e.dataTransfer?.types || []).includes("Files");
  panel.addEventListener("dragenter", (e) => {
    if (!has(e)) return;
    e.preventDefault();
    if (!depth++) { overlay = h("div", { class: "drop", text: t.drop }); panel.append(overlay); }
  });
  panel.addEventListener("dragover", (e) => { if (has(e)) e.preventDefault(); });
  panel.addEventListener("dragleave", () => { if (depth && !--depth) overlay?.remove(); });
  panel.addEventListener("drop", (e) => {
    if (!has(e)) return;
    e.preventDefault();
    depth = 0;
    overlay?.remove();
    addFiles(e.dataTransfer.files);
  });
}

// --- socket
const waiting = new Map(); // ref -> callback

function send(frame) {
  if (ws?.readyState === 1) { ws.send(JSON.stringify(frame)); return true; }
  return false;
}

function request(frame, callback) {
  const ref = "r" + ++refSeq;
  waiting.set(ref, callback);
  if (!send({ ...frame, ref })) { waiting.delete(ref); callback({ type: "error", code: "offline", message: t.reconnecting }); }
}

function connect() {
  if (stopped) return;
  clearTimeout(reconnectTimer);
  const base = /^wss?:/.test(boot.ws_url) ? boot.ws_url : SERVER.replace(/^http/, "ws") + (boot.ws_url || "/ws/widget/");
  const socket = new WebSocket(base + "?widget_token=" + encodeURIComponent(token) + "&token=" + encodeURIComponent(boot.session_token));
  ws = socket;
  ++socketSerial;
  setConn(attempt ? "reconnecting" : "connecting");
  socket.onmessage = (e) => {
    if (ws !== socket) return;
    lastFrameAt = Date.now();
    let frame;
    try { frame = JSON.parse(e.data); } catch { return; }
    onFrame(frame);
  };
  socket.onclose = (e) => {
    if (ws !== socket) return;
    ws = null;
    clearInterval(heartbeatTimer);
    for (const cb of waiting.values()) cb({ type: "error", code: "offline", message: t.reconnecting });
    waiting.clear();
    for (const c of conversations.values()) c.resuming = c.again = false;
    setConn("reconnecting");
    if ([4000, 4003, 4004].includes(e.code)) stopped = true;
    else if (e.code === 4001) rebootstrap();
    else scheduleReconnect();
  };
}

function scheduleReconnect() {
  clearTimeout(reconnectTimer);
  // Exponential backoff with full jitter: a restarted server is not hit by every widget at once.
  const cap = Math.min(30000, 500 * 2 ** Math.min(attempt, 6));
  attempt++;
  reconnectTimer = setTimeout(connect, cap / 2 + Math.random() * cap / 2);
}

function rebootstrap() {
  bootstrap().then((data) => { boot = { ...boot, ...data }; connect(); }, () => scheduleReconnect());
}

function startHeartbeat(seconds) {
  clearInterval(heartbeatTimer);
  const period = Math.max(5, seconds || 20) * 1000;
  heartbeatTimer = setInterval(() => {
    if (!ws) return;
    // A socket that has gone silent (half-open TCP after a server crash) is replaced.
    if (Date.now() - lastFrameAt > period * 2.5) { const s = ws; s.onclose({ code: 1006 }); s.close(); return; }
    send({ type: "ping" });
  }, period);
}

function onFrame(f) {
  if (f.type === "hello") return onHello(f);
  if (f.ref?.startsWith("m:")) return onSendResult(f.ref.slice(2), f);
  if (f.ref && waiting.has(f.ref)) { const cb = waiting.get(f.ref); waiting.delete(f.ref); cb(f); return; }
  if (f.type === "typing.started" || f.type === "typing.stopped") {
    if (f.data?.who === "agent") agentTyping(f.type === "typing.started", f.data.name);
    return;
  }
  if (f.type === "presence") return setAvailability(f.data || {});
  if (f.type === "queue") return onQueue(f);
  if (f.type === "resume.done") {
    const c = conv(f.conversation_id);
    c.resuming = false;
    // A frame dropped while the replay was in flight may be newer than the replay: ask again.
    if (c.again || f.last_id > c.last) { c.again = false; resume(f.conversation_id); }
    return;
  }
  if (f.type === "live") return onLive(f.data || {});
  if (f.type === "invitation") return onInvitation(f.data || {});
  if (f.type === "error" && f.code === "captcha_required" && f.challenge) return showCaptcha(f.challenge);
  if (typeof f.id === "number" && f.conversation_id) return onDurable(f);
}

function onHello(f) {
  attempt = 0;
  ws.ready = true;
  if (closeOwed) closeOwed = !send({ type: "widget.close" });
  setConn("online");
  startHeartbeat(f.heartbeat);
  setAvailability(f);
  if (f.conversation_id) {
    currentId = f.conversation_id;
    const c = conv(f.conversation_id);
    if (f.conversation) applyConversation(f.conversation, [], false);
    setQueue(f.queue, f.conversation);
    if (f.last_id > c.last) resume(f.conversation_id);
  }
  flush();
  markRead();
}

// A live place from the scheduler tick: for the current conversation while it still waits.
function onQueue(f) {
  if (f.conversation_id !== currentId) return;
  const c = conv(f.conversation_id);
  if (c.assignee || c.status !== "open") return;
  setQueue(f.data, null);
}

function onLive(data) {
  if (data.state === "interrupted") { setConn("interrupted"); return; }
  // Live delivery is back: whatever was stored meanwhile is read from the event log.
  setConn("online");
  if (currentId) conv(currentId); // known so far only from an ack, perhaps
  for (const id of conversations.keys()) resume(id);
}

function resume(id) {
  const c = conv(id);
  if (c.resuming) { c.again = true; return; }
  c.resuming = true;
  send({ type: "resume", conversation_id: id, after: c.last });
}

function onDurable(f) {
  const c = conv(f.conversation_id);
  if (f.id <= c.last) return; // duplicate
  if (f.id > c.last + 1) { resume(f.conversation_id); return; } // gap: the replay brings it again
  c.last = f.id;
  apply(f);
}

function apply(f) {
  const d = f.data || {};
  if (f.type === "message.created") {
    const m = d.message;
    const fresh = upsert(m, true);
    if (m.direction === "out") {
      agentTyping(false);
      send({ type: "message.delivered", conversation_id: f.conversation_id, up_to_message_id: m.id });
      if (fresh && !opened) { unread++; updateBadge(); }
      markRead();
    }
    if (conv(f.conversation_id).status === "resolved" && m.direction === "in") showResolved(false);
  } else if (f.type === "message.updated") {
    if (d.direction === "in" && d.changes?.delivered_at) markOwn(d.up_to_message_id, "delivered");
  } else if (f.type === "conversation.read") {
    if (d.reader === "agent") markOwn(d.up_to_message_id, "read");
  } else if (f.type === "conversation.created" || f.type === "conversation.updated") {
    if (d.conversation) applyConversation(d.conversation, d.changes || [], true);
  } else if (f.type === "rating.requested") {
    showRating(f.conversation_id, d.scale || "stars");
    if (!opened) { unread++; updateBadge(); }
  }
}

function applyConversation(c, changes, live) {
  const state = conv(c.id);
  state.status = c.status;
  state.assignee = c.assignee;
  if (c.id >= (currentId || 0)) {
    currentId = c.id;
    showResolved(c.status === "resolved" || c.status === "closed");
    if (c.assignee || c.status !== "open") ui.queue.hidden = true;
    // "Olga opened your conversation" holds while she has it open and it is not over.
    if (c.status === "resolved" || c.status === "closed" || !c.opened) info("");
  }
  // Rated in another tab, or a newer conversation started there: this tab's form goes too.
  for (const box of ui.extra.querySelectorAll(".rating, .thanks")) {
    const of = +box.dataset.conversation;
    if (of === c.id && c.rating && box.matches(".rating")) box.replaceWith(thanks(c.id));
    else if (of !== currentId) box.remove();
  }
  if (live && changes.includes("opened") && c.opened && c.status === "open") info(fmt(t.opened, { name: c.assignee?.name || t.operator }));
  if (c.rating_requested && !live && c.id === currentId && !ui.extra.querySelector(".rating")) showRating(c.id, boot.settings.rating.scale);
}

// --- invitations (docs/widget.md, "Invitations")
const invitationsShown = new Set();
function onInvitation(d) {
  if (!d.id || invitationsShown.has(d.id)) return;
  invitationsShown.add(d.id);
  const who = d.automatic ? boot.settings.widget?.title || t.title : d.sender?.name || t.operator;
  ui.log.append(h("div", { class: "msg out invitation", "data-invitation": d.id }, [
    h("div", { class: "who", text: who }),
    h("div", { class: "bubble" }, [serverHtml(d.content)]),
  ]));
  scrollDown();
  emit("invitation", { invitation: d });
  api.open(false); // unasked: the focus stays with the visitor
}

// --- bootstrap
function bootstrap() {
  const nav = navigator.language || "";
  return fetch(SERVER + "/api/widget/bootstrap/", {
    method: "POST",
    credentials: "omit",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      widget_token: token,
      pubsub_token: store.get("pubsub", "") || "",
      language: nav.slice(0, 2),
      page: { url: location.href, title: D.title, referrer: D.referrer, language: nav, user_agent: navigator.userAgent },
    }),
  }).then((r) => {
    if (r.status === 403 || r.status === 404) { const e = new Error("refused"); e.fatal = true; throw e; }
    if (!r.ok) throw new Error("bootstrap " + r.status);
    return r.json();
  }).then((data) => {
    store.set("pubsub", data.pubsub_token);
    return data;
  });
}

function renderHistory() {
  const list = boot.history || [];
  list.forEach((entry, i) => {
    if (i > 0) ui.log.append(h("div", { class: "divider", text: "— " + t.earlier + " —" }));
    const c = conv(entry.conversation.id);
    c.last = Math.max(c.last, entry.conversation.last_id || 0);
    c.status = entry.conversation.status;
    for (const m of entry.messages) upsert(m, false);
  });
  const delivered = new Set(list.flatMap((e) => e.messages.map((m) => m.client_id)));
  outbox = outbox.filter((i) => !delivered.has(i.client_id));
  saveOutbox();
  outbox.forEach(renderPending);
  if (boot.conversation) {
    applyConversation(boot.conversation, [], false);
    setQueue(boot.queue, boot.conversation);
  }
}

let bootAttempt = 0;
function start() {
  bootstrap().then((data) => {
    boot = data;
    const lang = script?.getAttribute("data-language") || data.settings.language || (navigator.language || "en").slice(0, 2);
    t = TEXTS[lang] || TEXTS.en;
    buildUI();
    renderHistory();
    setAvailability(data);
    if (needsPreChat()) showPreChat();
    if (script?.hasAttribute("data-hide-launcher")) api.hideLauncher();
    connect();
    ready = true;
    for (const call of queued.splice(0)) call();
    emit("ready", { visitorId: data.visitor_id });
  }, (error) => {
    if (error.fatal) { console.warn("Messenger: this site is not allowed to use the widget."); return; }
    // The server may be restarting: try again, backing off.
    setTimeout(start, Math.min(30000, 1000 * 2 ** bootAttempt++) * (0.5 + Math.random() / 2));
  });
}

D.addEventListener("visibilitychange", markRead);
W.addEventListener("online", () => { if (boot && !ws && !stopped) { attempt = 0; connect(); } });

// --- public API
let ready = false, opener = null;
const queued = [];
// Called before the bootstrap answered: run once the widget is built, in order.
const whenReady = (fn) => (...args) => (ready ? fn(...args) : void queued.push(() => fn(...args)));
const setLauncher = (visible) => { launcherVisible = visible; ui.launcher.hidden = !visible; };
const api = {
  open: whenReady((takeFocus = true) => {
    if (opened) return;
    opened = true;
    ui.panel.hidden = false;
    ui.launcher.setAttribute("aria-expanded", "true");
    scrollDown();
    if (takeFocus) {
      if (D.activeElement !== host) opener = D.activeElement;
      (ui.composer.hidden ? ui.extra.querySelector("input, select") || ui.close : ui.input).focus();
    }
    updateBadge();
    markRead();
    emit("open");
  }),
  close: whenReady(() => {
    if (!opened) return;
    opened = false;
    // Only a focus inside moves back.
    const back = D.activeElement === host && (launcherVisible ? ui.launcher : opener);
    ui.panel.hidden = true;
    ui.launcher.setAttribute("aria-expanded", "false");
    stopTyping();
    closeOwed = !send({ type: "widget.close" }); // the server sends no more automatic invitations
    if (back?.isConnected) back.focus();
    emit("close");
  }),
  toggle() { opened ? api.close() : api.open(); },
  showLauncher: whenReady(() => setLauncher(true)),
  hideLauncher: whenReady(() => setLauncher(false)),
  on(name, fn) { (listeners[name] = listeners[name] || []).push(fn); if (name === "ready" && ready) fn({ visitorId: boot.visitor_id }); return api; },
  off(name, fn) { listeners[name] = (listeners[name] || []).filter((x) => x !== fn); return api; },
  isOpen: () => opened,
  get connection() { return root ? root.getAttribute("data-conn") : "connecting"; },
  version: "1",
};
W.ProfiMessenger = api;
// Calls made on the loader's stub before this script arrived, in order.
if (stub) for (const [name, args] of stub.q || []) if (typeof api[name] === "function") api[name](...args);

if (D.readyState === "loading") D.addEventListener("DOMContentLoaded", start); else start();
})();
