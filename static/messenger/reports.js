/* The reports page (docs/dashboard.md): reads the filters, fetches /api/operator/reports/… (the
 * staff session) and draws the figures, inline SVG charts and tables. No library, no inline code.
 * The "now" panel reads /api/operator/reports/now/ again whenever a frame of the operator socket
 * (opened with ?presence=0: listening is not being online) may have changed it, at most once a
 * second, and every 30 s; ages count on in the page from the answer's timestamps. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("config").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const FILTERS = ["start", "end", "tz", "branch", "region", "inbox", "operator", "label"];
  const $ = (id) => document.getElementById(id);

  // --- strings ---------------------------------------------------------------------------------
  const STRINGS = {
    en: {
      weekdays: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
      s: "s", min: "min", h: "h",
      loading: "Loading…", failed: "The report could not be loaded: ", noData: "No data.", noRows: "No rows.",
      row: " row", rows: " rows",
      // Counted nouns by the language's plural rules (Intl.PluralRules): one, few, many, other.
      days: { one: " day", other: " days" }, ratingsCount: { one: " rating", other: " ratings" },
      newestRatings: (shown, total) => "The newest " + shown + " of " + total + " ratings (CSV: all)",
      newC: "New", resolved: "Resolved", reopened: "Reopened", missed: "Missed", day: "Day",
      figures: {
        "conversations.new": "New conversations", "conversations.resolved": "Resolved",
        "conversations.reopened": "Reopened", "conversations.missed": "Missed",
        "conversations.abandoned": "Abandoned", "first_response.median": "First response, median",
        "first_response.p90": "First response, p90",
        "first_response_working_hours.median": "First response in working hours, median",
        "resolution.median": "Resolution, median", "queue_wait.mean": "Queue wait, mean",
        "messages_per_conversation": "Messages per conversation", escalations: "Escalations",
        transfers: "Transfers", "csat.average": "CSAT average", "nps.score": "NPS",
      },
      firstResponseMedian: "First response, median", firstResponseP90: "First response, p90",
      resolutionMedian: "Resolution, median", resolutionP90: "Resolution, p90", queueWaitMedian: "Queue wait, median",
      csat: "CSAT", ratings: "Ratings", nps: "NPS",
      operator: "Operator", branch: "Branch", region: "Region",
      unassigned: "Unassigned", noBranch: "No branch", noRegion: "No region",
      chartConversations: "New and resolved conversations per day", chartFirstResponse: "First response per day (median)",
      firstResponse: "First response", perOperator: "Conversations per operator", perBranch: "Conversations per branch",
      heatmap: "New conversations by weekday and local hour", busiest: "Busiest: ", noNew: "No new conversations.",
      newLower: " new", resolvedLower: " resolved", queueWait: "queue wait ",
      csatTitle: (count, average) => "CSAT: " + count + (count === 1 ? " rating" : " ratings") + ", average " + average,
      ratedAt: "Rated at", conversation: "Conversation", scale: "Scale", score: "Score", comment: "Comment",
      now: {
        connecting: "Connecting…", online: "Live", offline: "Offline — reconnecting…",
        interrupted: "Live updates interrupted — reconnecting…",
        waiting: "Waiting", queue: "Waiting, unassigned", longest: "Longest wait", open: "Open",
        openUnassigned: "Open, unassigned", present: { online: "Online", away: "Away", busy: "Busy" },
        status: { online: "online", away: "away", busy: "busy", offline: "offline" },
        name: "Staff", state: "Status", openCol: "Open", waitingCol: "Waiting", capacity: "Capacity",
        updated: "Updated ", failed: "The live panel could not be loaded: ", nobody: "Nobody is online.",
        people: (n) => n + (n === 1 ? " person" : " people"),
      },
    },
    ru: {
      weekdays: ["Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс"],
      s: "с", min: "мин", h: "ч",
      loading: "Загрузка…", failed: "Не удалось загрузить отчёт: ", noData: "Нет данных.", noRows: "Нет строк.",
      row: " стр.", rows: " стр.", days: { other: " дн." },
      ratingsCount: { one: " оценка", few: " оценки", many: " оценок", other: " оценки" },
      newestRatings: (shown, total) => "Последние " + shown + " из " + total + " оценок (в CSV все)",
      newC: "Новые", resolved: "Решено", reopened: "Открыто снова", missed: "Пропущено", day: "День",
      figures: {
        "conversations.new": "Новые диалоги", "conversations.resolved": "Решено",
        "conversations.reopened": "Открыто снова", "conversations.missed": "Пропущено",
        "conversations.abandoned": "Брошено в очереди", "first_response.median": "Первый ответ, медиана",
        "first_response.p90": "Первый ответ, p90",
        "first_response_working_hours.median": "Первый ответ в рабочие часы, медиана",
        "resolution.median": "Решение, медиана", "queue_wait.mean": "Ожидание в очереди, среднее",
        "messages_per_conversation": "Сообщений на диалог", escalations: "Эскалации",
        transfers: "Передачи", "csat.average": "CSAT, среднее", "nps.score": "NPS",
      },
      firstResponseMedian: "Первый ответ, медиана", firstResponseP90: "Первый ответ, p90",
      resolutionMedian: "Решение, медиана", resolutionP90: "Решение, p90", queueWaitMedian: "Ожидание в очереди, медиана",
      csat: "CSAT", ratings: "Оценки", nps: "NPS",
      operator: "Оператор", branch: "Филиал", region: "Регион",
      unassigned: "Не назначен", noBranch: "Без филиала", noRegion: "Без региона",
      chartConversations: "Новые и решённые диалоги по дням", chartFirstResponse: "Первый ответ по дням (медиана)",
      firstResponse: "Первый ответ", perOperator: "Диалоги по операторам", perBranch: "Диалоги по филиалам",
      heatmap: "Новые диалоги по дням недели и местным часам", busiest: "Пик: ", noNew: "Новых диалогов нет.",
      newLower: " новых", resolvedLower: " решено", queueWait: "ожидание ",
      csatTitle: (count, average) => "CSAT: оценок: " + count + ", среднее " + average,
      ratedAt: "Оценено", conversation: "Диалог", scale: "Шкала", score: "Балл", comment: "Комментарий",
      now: {
        connecting: "Подключение…", online: "На связи", offline: "Нет связи — переподключаемся…",
        interrupted: "Обновления прерваны — переподключаемся…",
        waiting: "Ждут ответа", queue: "Ждут, не назначены", longest: "Дольше всех ждёт", open: "Открыто",
        openUnassigned: "Открыто, не назначены", present: { online: "В сети", away: "Отошли", busy: "Заняты" },
        status: { online: "в сети", away: "отошёл", busy: "занят", offline: "не в сети" },
        name: "Сотрудник", state: "Статус", openCol: "Открыто", waitingCol: "Ждут", capacity: "Лимит",
        updated: "Обновлено ", failed: "Не удалось загрузить панель: ", nobody: "Никого нет в сети.",
        people: (n) => n + " чел.",
      },
    },
  };
  const LANGUAGE = config.language === "ru" ? "ru" : "en";
  // A key the Russian table lacks reads the English string: nested tables (figures, now, …) key
  // by key; a word's plural forms ({one, other}: Intl.PluralRules picks) and lists are one entry.
  const PLURAL_FORMS = ["zero", "one", "two", "few", "many", "other"];
  const isTable = (value) =>
    value !== null && typeof value === "object" && !Array.isArray(value) && !Object.keys(value).every((key) => PLURAL_FORMS.includes(key));
  function overEnglish(table, english) {
    const merged = Object.assign({}, english, table);
    for (const key of Object.keys(english)) {
      if (isTable(english[key]) && isTable(table[key])) merged[key] = overEnglish(table[key], english[key]);
    }
    return merged;
  }
  const T = overEnglish(STRINGS[LANGUAGE], STRINGS.en);
  const WEEKDAYS = T.weekdays;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // --- formatting ----------------------------------------------------------------------------

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.round(seconds);
    if (s < 60) return s + " " + T.s;
    if (s < 3600) return Math.floor(s / 60) + " " + T.min + " " + (s % 60) + " " + T.s;
    // Whole minutes first, then hours: 7170 s is 2 h 0 min, not 1 h 60 min.
    const minutes = Math.round(s / 60);
    return Math.floor(minutes / 60) + " " + T.h + " " + (minutes % 60) + " " + T.min;
  }

  const PLURALS = new Intl.PluralRules(LANGUAGE);

  /** "1 day", "2 days"; "1 оценка", "3 оценки", "5 оценок". */
  function counted(n, forms) {
    return n + (forms[PLURALS.select(n)] || forms.other);
  }

  function number(value, digits) {
    if (value === null || value === undefined) return "—";
    if (digits === undefined) return String(value);
    // The language's decimal sign: 4.50 in English, 4,50 in Russian.
    return Number(value).toLocaleString(LANGUAGE, { minimumFractionDigits: digits, maximumFractionDigits: digits, useGrouping: false });
  }

  /** A moment as the report zone's local time; a zone this browser does not know: UTC, said so. */
  function localTime(iso, zone) {
    try {
      return new Date(iso).toLocaleString(LANGUAGE, { timeZone: zone });
    } catch {
      return new Date(iso).toLocaleString(LANGUAGE, { timeZone: "UTC" }) + " UTC";
    }
  }

  // --- filters and URLs ------------------------------------------------------------------------

  function fillSelect(id, options) {
    const select = $(id);
    if (!select) return;
    for (const option of options) select.append(el("option", { value: String(option.id) }, option.name));
  }

  function initFilters() {
    // The last 30 days up to today in the default zone, as the server counts them (not the UTC day).
    $("f-start").value = config.start;
    $("f-end").value = config.end;
    $("f-tz").value = config.tz;
    fillSelect("f-branch", config.choices.branches);
    fillSelect("f-region", config.choices.regions);
    fillSelect("f-inbox", config.choices.inboxes);
    fillSelect("f-operator", config.choices.operators);
    fillSelect("f-label", config.choices.labels);
    const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
    for (const zone of zones) $("zones").append(el("option", { value: zone }));
    // The address keeps the filters: a reload or a shared link shows the same report.
    const given = new URLSearchParams(window.location.search);
    for (const name of FILTERS) {
      const input = $("f-" + name);
      if (!input || !given.has(name)) continue;
      const fallback = input.value;
      input.value = given.get(name);
      // A day the date field refuses (?start=garbage) keeps the default instead of emptying it.
      if (!input.value) input.value = fallback;
    }
  }

  function query() {
    const params = new URLSearchParams();
    for (const name of FILTERS) {
      const input = $("f-" + name);
      if (input && input.value) params.set(name, input.value);
    }
    return params.toString();
  }

  async function fetchJson(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = body.detail || body.message || (body.error && body.error.message) || JSON.stringify(body);
      throw new Error(response.status + ": " + detail);
    }
    return body;
  }

  // --- charts ----------------------------------------------------------------------------------

  /** An <svg> with an accessible name (role img, <title>, <desc>) in ``figure``, plus a caption. */
  function chart(figure, title, description, width, height) {
    figure.replaceChildren();
    const id = figure.id + "-title";
    const root = svgEl("svg", {
      viewBox: "0 0 " + width + " " + height,
      role: "img",
      "aria-labelledby": id + " " + id + "-desc",
    });
    root.append(svgEl("title", { id: id }, title), svgEl("desc", { id: id + "-desc" }, description));
    figure.append(root, el("figcaption", {}, title));
    return root;
  }

  function legend(root, items, x, y) {
    const group = svgEl("g", { class: "legend" });
    items.forEach((item, index) => {
      const left = x + index * 120;
      group.append(svgEl("rect", { x: left, y: y - 9, width: 10, height: 10, class: item.cls }));
      group.append(svgEl("text", { x: left + 14, y: y }, item.label));
    });
    root.append(group);
  }

  /** Lines over the days: ``series`` is [{key, label, cls}], ``format`` turns a value into text. */
  function lineChart(figure, title, rows, series, format) {
    const width = 560;
    const height = 220;
    const pad = { left: 76, right: 12, top: 24, bottom: 28 };
    const values = rows.flatMap((row) => series.map((s) => row[s.key]).filter((v) => v !== null));
    const max = Math.max(1, ...values);
    const description = rows
      .map((row) => row.date + ": " + series.map((s) => s.label + " " + format(row[s.key])).join(", "))
      .join("; ");
    const root = chart(figure, title, description || T.noData, width, height);
    const x = (index) =>
      pad.left + (rows.length < 2 ? (width - pad.left - pad.right) / 2 : (index * (width - pad.left - pad.right)) / (rows.length - 1));
    const y = (value) => height - pad.bottom - (value / max) * (height - pad.top - pad.bottom);
    root.append(svgEl("line", { class: "axis", x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0) }));
    root.append(svgEl("line", { class: "axis", x1: pad.left, y1: pad.top, x2: pad.left, y2: y(0) }));
    root.append(svgEl("text", { x: pad.left - 4, y: y(max) + 4, "text-anchor": "end" }, format(max)));
    root.append(svgEl("text", { x: pad.left - 4, y: y(0), "text-anchor": "end" }, format(0)));
    if (rows.length) {
      root.append(svgEl("text", { x: x(0), y: height - 8, "text-anchor": "start" }, rows[0].date));
      if (rows.length > 1) {
        root.append(svgEl("text", { x: x(rows.length - 1), y: height - 8, "text-anchor": "end" }, rows[rows.length - 1].date));
      }
    }
    for (const s of series) {
      let d = "";
      rows.forEach((row, index) => {
        const value = row[s.key];
        if (value === null) return;
        d += (d ? " L" : "M") + x(index).toFixed(1) + " " + y(value).toFixed(1);
        const dot = svgEl("circle", { cx: x(index), cy: y(value), r: 3, class: s.cls });
        dot.append(svgEl("title", {}, row.date + " · " + s.label + ": " + format(value)));
        root.append(dot);
      });
      if (d) root.append(svgEl("path", { d: d, class: s.cls }));
    }
    legend(root, series, pad.left, 14);
  }

  /** Horizontal bars, one group per row: new and resolved conversations. */
  function barChart(figure, title, rows, unnamed) {
    const series = [
      { key: "new", label: T.newC, cls: "s-new" },
      { key: "resolved", label: T.resolved, cls: "s-resolved" },
    ];
    const band = 30;
    const width = 560;
    const left = 150;
    const height = 28 + Math.max(1, rows.length) * band;
    const max = Math.max(1, ...rows.flatMap((row) => series.map((s) => row[s.key])));
    const label = (row) => row.name || unnamed;
    const description = rows.map((row) => label(row) + ": " + row.new + T.newLower + ", " + row.resolved + T.resolvedLower).join("; ");
    const root = chart(figure, title, description || T.noData, width, height);
    legend(root, series, left, 14);
    rows.forEach((row, index) => {
      const top = 24 + index * band;
      root.append(svgEl("text", { x: left - 6, y: top + 15, "text-anchor": "end" }, label(row)));
      series.forEach((s, n) => {
        const length = (row[s.key] / max) * (width - left - 40);
        const bar = svgEl("rect", { x: left, y: top + 2 + n * 12, width: Math.max(1, length), height: 10, class: "bar " + s.cls });
        bar.append(svgEl("title", {}, label(row) + " · " + s.label + ": " + row[s.key]));
        root.append(bar);
        root.append(svgEl("text", { x: left + length + 4, y: top + 11 + n * 12 }, String(row[s.key])));
      });
    });
  }

  /** Weekday × hour: the darker the cell, the more new conversations. */
  function heatMap(figure, cells) {
    const width = 560;
    const left = 36;
    const size = (width - left - 8) / 24;
    const height = 24 + 7 * size;
    const max = Math.max(1, ...cells.map((cell) => cell.new));
    const busiest = cells.filter((cell) => cell.new).sort((a, b) => b.new - a.new).slice(0, 5);
    const description = busiest.length
      ? T.busiest + busiest.map((c) => WEEKDAYS[c.weekday] + " " + c.hour + ":00 " + c.new + T.newLower).join(", ")
      : T.noNew;
    const root = chart(figure, T.heatmap, description, width, height);
    for (let hour = 0; hour < 24; hour += 3) {
      root.append(svgEl("text", { x: left + hour * size, y: 12 }, String(hour).padStart(2, "0")));
    }
    WEEKDAYS.forEach((day, weekday) => root.append(svgEl("text", { x: 0, y: 20 + weekday * size + size * 0.7 }, day)));
    for (const cell of cells) {
      const rect = svgEl("rect", {
        x: left + cell.hour * size,
        y: 18 + cell.weekday * size,
        width: size - 2,
        height: size - 2,
        class: "cell",
        "fill-opacity": cell.new ? (0.15 + (0.85 * cell.new) / max).toFixed(2) : "0.04",
        "data-weekday": cell.weekday,
        "data-hour": cell.hour,
        "data-new": cell.new,
      });
      rect.append(
        svgEl("title", {}, WEEKDAYS[cell.weekday] + " " + cell.hour + ":00 · " + cell.new + T.newLower + " · " + T.queueWait + duration(cell.queue_wait_mean))
      );
      root.append(rect);
    }
  }

  /** The ratings table shows the newest (the API's limit); the summary counts them all. */
  function ratingsCaption(shown, figures) {
    const total = figures.csat.count + figures.nps.count;
    return shown < total ? T.newestRatings(shown, total) : counted(total, T.ratingsCount);
  }

  /** Stars 1–5: how many ratings each. */
  function csatChart(figure, csat) {
    const width = 560;
    const height = 180;
    const counts = [1, 2, 3, 4, 5].map((star) => csat.distribution[String(star)] || 0);
    const max = Math.max(1, ...counts);
    const description = counts.map((count, index) => index + 1 + "★: " + count).join(", ");
    const title = T.csatTitle(csat.count, number(csat.average, 2));
    const root = chart(figure, title, description, width, height);
    const slot = (width - 40) / 5;
    counts.forEach((count, index) => {
      const barHeight = (count / max) * (height - 60);
      const x = 20 + index * slot + slot * 0.2;
      const bar = svgEl("rect", { x: x, y: height - 24 - barHeight, width: slot * 0.6, height: Math.max(1, barHeight), class: "s-new" });
      bar.append(svgEl("title", {}, index + 1 + "★: " + count));
      root.append(bar);
      root.append(svgEl("text", { x: x + slot * 0.3, y: height - 8, "text-anchor": "middle" }, index + 1 + "★"));
      root.append(svgEl("text", { x: x + slot * 0.3, y: height - 28 - barHeight, "text-anchor": "middle" }, String(count)));
    });
  }

  // --- figures and tables ----------------------------------------------------------------------

  const FIGURES = [
    ["conversations.new", number],
    ["conversations.resolved", number],
    ["conversations.reopened", number],
    ["conversations.missed", number],
    ["conversations.abandoned", number],
    ["first_response.median", duration],
    ["first_response.p90", duration],
    ["first_response_working_hours.median", duration],
    ["resolution.median", duration],
    ["queue_wait.mean", duration],
    ["messages_per_conversation", (v) => number(v, 1)],
    ["escalations", number],
    ["transfers", number],
    ["csat.average", (v) => number(v, 2)],
    ["nps.score", (v) => number(v, 1)],
  ].map(([path, format]) => [path, T.figures[path], format]);

  function pick(object, path) {
    return path.split(".").reduce((value, key) => (value === null || value === undefined ? value : value[key]), object);
  }

  function renderFigures(figures) {
    const list = $("figures");
    list.replaceChildren();
    for (const [path, label, format] of FIGURES) {
      const value = pick(figures, path);
      const box = el("div");
      box.append(el("dt", {}, label), el("dd", { "data-figure": path, "data-value": value === null ? "" : String(value) }, format(value)));
      list.append(box);
    }
  }

  /** A table: ``columns`` is [[key, header, format]]; every cell keeps its raw value in data-value. */
  function renderTable(id, columns, rows, caption) {
    const table = $(id);
    table.replaceChildren();
    table.append(el("caption", {}, caption));
    const head = el("tr");
    for (const [, header] of columns) head.append(el("th", { scope: "col" }, header));
    const thead = el("thead");
    thead.append(head);
    table.append(thead);
    const body = el("tbody");
    for (const row of rows) {
      const line = el("tr", { "data-id": row.id === undefined || row.id === null ? "" : String(row.id) });
      for (const [key, , format] of columns) {
        const value = row[key];
        line.append(el("td", { "data-key": key, "data-value": value === null ? "" : String(value) }, format(value)));
      }
      body.append(line);
    }
    if (!rows.length) {
      const empty = el("tr");
      empty.append(el("td", { colspan: String(columns.length) }, T.noRows));
      body.append(empty);
    }
    table.append(body);
  }

  const text = (value) => (value === null || value === undefined || value === "" ? "—" : String(value));
  const GROUP = [
    ["new", T.newC, number],
    ["resolved", T.resolved, number],
    ["reopened", T.reopened, number],
    ["missed", T.missed, number],
    ["first_response_median", T.firstResponseMedian, duration],
    ["first_response_p90", T.firstResponseP90, duration],
    ["resolution_median", T.resolutionMedian, duration],
    ["queue_wait_median", T.queueWaitMedian, duration],
    ["csat_average", T.csat, (v) => number(v, 2)],
    ["csat_count", T.ratings, number],
    ["nps", T.nps, (v) => number(v, 1)],
  ];

  function groupTable(id, header, rows, unnamed) {
    renderTable(id, [["name", header, (v) => v || unnamed], ...GROUP], rows, rows.length + (rows.length === 1 ? T.row : T.rows));
  }


  // --- the live "now" panel ------------------------------------------------------------------

  const NOW = T.now;
  const live = {
    ws: null, retry: 0, heartbeat: null, answer: null, skew: 0,
    inFlight: false, again: false, timer: null, lastFetch: 0, generation: 0,
  };
  const REFETCH_GAP = 1000; // at most one read a second, however many frames arrive
  const PERIODIC = 30000; // and one every 30 s: new branches, a lost frame, a sweep that ran

  function nowQuery() {
    const params = new URLSearchParams();
    for (const name of ["branch", "inbox"]) {
      const input = $("f-" + name);
      if (input && input.value) params.set(name, input.value);
    }
    return params.toString();
  }

  /** Seconds since ``iso`` by the server's clock (the answer's ``at`` corrects this one's). */
  function ageOf(iso) {
    return Math.max(0, (Date.now() + live.skew - new Date(iso).getTime()) / 1000);
  }

  function setLive(stateName) {
    const node = $("now-connection");
    node.dataset.state = stateName;
    node.textContent = { online: NOW.online, offline: NOW.offline, interrupted: NOW.interrupted }[stateName] || NOW.connecting;
  }

  /** Read the panel now, or as soon as a second has passed since the last read began. */
  function scheduleNow() {
    if (live.inFlight) { live.again = true; return; }
    if (live.timer) return;
    const wait = Math.max(0, live.lastFetch + REFETCH_GAP - Date.now());
    live.timer = setTimeout(() => { live.timer = null; fetchNow(); }, wait);
  }

  async function fetchNow() {
    live.inFlight = true;
    live.lastFetch = Date.now();
    const current = ++live.generation;
    const error = $("now-error");
    try {
      const answer = await fetchJson(config.urls.now + "?" + nowQuery());
      if (current === live.generation) {
        live.skew = new Date(answer.at).getTime() - Date.now();
        live.answer = answer;
        error.hidden = true;
        renderNow(answer);
      }
    } catch (failure) {
      error.textContent = NOW.failed + failure.message;
      error.hidden = false;
    } finally {
      live.inFlight = false;
      if (live.again) { live.again = false; scheduleNow(); }
    }
  }

  function nowFigure(key, label, value, text, extra) {
    const box = el("div");
    const dd = el("dd", Object.assign({ "data-now": key, "data-value": value === null ? "" : String(value) }, extra || {}), text);
    box.append(el("dt", {}, label), dd);
    return box;
  }

  function renderNow(answer) {
    const list = $("now-figures");
    const longest = answer.waiting.longest;
    list.replaceChildren(
      nowFigure("waiting", NOW.waiting, answer.waiting.count, String(answer.waiting.count)),
      nowFigure("waiting_unassigned", NOW.queue, answer.waiting.unassigned, String(answer.waiting.unassigned)),
      nowFigure(
        "longest", NOW.longest, longest ? longest.conversation_id : null,
        longest ? duration(ageOf(longest.since)) : "—",
        longest ? { "data-since": longest.since, "data-conversation": String(longest.conversation_id) } : null,
      ),
      nowFigure("open", NOW.open, answer.open.count, String(answer.open.count)),
      nowFigure("open_unassigned", NOW.openUnassigned, answer.open.unassigned, String(answer.open.unassigned)),
      ...["online", "away", "busy"].map((status) =>
        nowFigure("present_" + status, NOW.present[status], answer.present[status], String(answer.present[status]))),
    );
    const table = $("table-now");
    table.replaceChildren();
    const present = answer.operators.filter((row) => row.status !== "offline").length;
    table.append(el("caption", {}, present ? NOW.people(present) : NOW.nobody));
    const head = el("tr");
    for (const header of [NOW.name, NOW.state, NOW.openCol, NOW.waitingCol, NOW.capacity]) head.append(el("th", { scope: "col" }, header));
    const thead = el("thead");
    thead.append(head);
    const body = el("tbody");
    for (const row of answer.operators) {
      const line = el("tr", { "data-id": String(row.id), "data-status": row.status });
      const status = el("td", { "data-key": "status", "data-value": row.status });
      status.append(el("span", { class: "presence", "data-status": row.status }, NOW.status[row.status] || row.status));
      line.append(
        el("td", { "data-key": "name", "data-value": row.name }, row.name),
        status,
        el("td", { "data-key": "open", "data-value": String(row.open) }, String(row.open)),
        el("td", { "data-key": "waiting", "data-value": String(row.waiting) }, String(row.waiting)),
        el("td", { "data-key": "max_concurrent", "data-value": row.max_concurrent === null ? "" : String(row.max_concurrent) }, number(row.max_concurrent)),
      );
      body.append(line);
    }
    table.append(thead, body);
    $("now-updated").textContent = NOW.updated + new Date(answer.at).toLocaleTimeString(LANGUAGE);
    document.body.dataset.nowLoaded = String((Number(document.body.dataset.nowLoaded) || 0) + 1);
  }

  /** The longest wait counts on between reads. */
  function tick() {
    for (const node of document.querySelectorAll("#now-figures dd[data-since]")) node.textContent = duration(ageOf(node.dataset.since));
  }

  // Frames after which the figures may differ (docs/protocol.md): a conversation created or
  // changed (status, assignee, branch), an assignment, a message (a visitor's starts a wait, a
  // person's reply ends it), a presence change; "live restored": whatever was lost meanwhile.
  function affectsNow(frame) {
    const type = frame.type || "";
    if (type === "presence") return true;
    if (type === "live") return frame.data && frame.data.state === "restored";
    if (type === "message.created") {
      const message = (frame.data && frame.data.message) || {};
      return message.direction === "in" || (message.direction === "out" && message.sender && message.sender.type === "user");
    }
    return type === "conversation.created" || type === "conversation.updated" || type.startsWith("assignment.");
  }

  function connectLive() {
    setLive("connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // presence=0: this page listens; it must not make its viewer available for chats.
    const ws = new WebSocket(scheme + "://" + location.host + config.socket_path + "?presence=0");
    live.ws = ws;
    ws.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame.type === "hello") {
        live.retry = 0;
        setLive("online");
        clearInterval(live.heartbeat);
        live.heartbeat = setInterval(() => {
          if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" }));
        }, (frame.heartbeat || config.heartbeat || 20) * 1000);
        scheduleNow(); // whatever changed while the socket was away is in the database
        return;
      }
      if (frame.type === "live" && frame.data && frame.data.state === "interrupted") { setLive("interrupted"); return; }
      if (frame.type === "live") setLive("online");
      if (affectsNow(frame)) scheduleNow();
    });
    ws.addEventListener("close", (event) => {
      clearInterval(live.heartbeat);
      setLive("offline");
      // As the dashboard (docs/protocol.md, "Close codes"): 4001 no session, the login page; 4003
      // the session ended and 4005 the access changed, reload; anything else: back off and retry.
      if (event.code === 4001) {
        location.assign(config.urls.login + "?next=" + encodeURIComponent(location.pathname + location.search));
        return;
      }
      if (event.code === 4003 || event.code === 4005) { location.reload(); return; }
      const delay = Math.min(30000, 500 * 2 ** live.retry) * (0.5 + Math.random() / 2);
      live.retry += 1;
      setTimeout(connectLive, delay);
    });
  }

  // --- the page --------------------------------------------------------------------------------

  let generation = 0;
  const REPORT_PARTS = [
    "figures", "chart-conversations", "chart-first-response", "table-series", "chart-operators", "table-operators",
    "chart-branches", "table-branches", "table-regions", "chart-heatmap", "chart-csat", "table-ratings",
  ];

  async function load() {
    const current = ++generation;
    const params = query();
    const error = $("report-error");
    error.hidden = true;
    $("report-status").textContent = T.loading;
    for (const link of document.querySelectorAll("a[data-csv]")) {
      link.href = config.urls[link.dataset.csv] + "csv/?" + params;
      link.setAttribute("download", "");
    }
    history.replaceState(null, "", window.location.pathname + "?" + params);
    const names = Object.keys(config.urls).filter((name) => name !== "now" && name !== "login");
    let answers;
    try {
      answers = await Promise.all(names.map((name) => fetchJson(config.urls[name] + "?" + params)));
    } catch (failure) {
      if (current !== generation) return;
      error.textContent = T.failed + failure.message;
      error.hidden = false;
      $("report-status").textContent = "";
      // The address already names the refused query: no figures of the previous one under it.
      for (const id of REPORT_PARTS) $(id).replaceChildren();
      return;
    }
    if (current !== generation) return;
    const data = Object.fromEntries(names.map((name, index) => [name, answers[index]]));
    const range = data.summary.range;
    renderFigures(data.summary.figures);
    const series = data.series.results;
    lineChart($("chart-conversations"), T.chartConversations, series, [
      { key: "new", label: T.newC, cls: "s-new" },
      { key: "resolved", label: T.resolved, cls: "s-resolved" },
    ], number);
    lineChart($("chart-first-response"), T.chartFirstResponse, series, [
      { key: "first_response_median", label: T.firstResponse, cls: "s-response" },
    ], duration);
    renderTable("table-series", [
      ["date", T.day, text],
      ["new", T.newC, number],
      ["resolved", T.resolved, number],
      ["missed", T.missed, number],
      ["first_response_median", T.firstResponseMedian, duration],
    ], series, counted(series.length, T.days));
    barChart($("chart-operators"), T.perOperator, data.operators.results, T.unassigned);
    groupTable("table-operators", T.operator, data.operators.results, T.unassigned);
    barChart($("chart-branches"), T.perBranch, data.branches.results, T.noBranch);
    groupTable("table-branches", T.branch, data.branches.results, T.noBranch);
    groupTable("table-regions", T.region, data.regions.results, T.noRegion);
    heatMap($("chart-heatmap"), data.heatmap.results);
    csatChart($("chart-csat"), data.summary.figures.csat);
    renderTable("table-ratings", [
      ["rated_at", T.ratedAt, (v) => localTime(v, range.tz)],
      ["conversation_id", T.conversation, number],
      ["scale", T.scale, text],
      ["score", T.score, number],
      ["comment", T.comment, text],
    ], data.ratings.results, ratingsCaption(data.ratings.results.length, data.summary.figures));
    $("report-status").textContent = range.start + " – " + range.end + " (" + range.tz + ")";
    document.body.dataset.loaded = String(current);
  }

  initFilters();
  $("report-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
    scheduleNow();
  });
  for (const select of document.querySelectorAll("#report-filters select")) select.addEventListener("change", load);
  for (const name of ["branch", "inbox"]) {
    const select = $("f-" + name);
    if (select) select.addEventListener("change", scheduleNow);
  }
  load();
  setLive("connecting");
  fetchNow();
  connectLive();
  setInterval(tick, 1000);
  setInterval(scheduleNow, PERIODIC);
})();
