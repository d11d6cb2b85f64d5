/* The reports page (docs/dashboard.md): reads the filters, fetches /api/operator/reports/… (the
 * staff session) and draws the figures, inline SVG charts and tables. No library, no inline code. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("config").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const FILTERS = ["start", "end", "tz", "branch", "region", "inbox", "operator", "label"];
  const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  const $ = (id) => document.getElementById(id);

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
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
  }

  function number(value, digits) {
    if (value === null || value === undefined) return "—";
    return digits === undefined ? String(value) : Number(value).toFixed(digits);
  }

  // --- filters and URLs ------------------------------------------------------------------------

  function isoDay(date) {
    return date.toISOString().slice(0, 10);
  }

  function fillSelect(id, options) {
    const select = $(id);
    if (!select) return;
    for (const option of options) select.append(el("option", { value: String(option.id) }, option.name));
  }

  function initFilters() {
    const today = new Date();
    const monthAgo = new Date(today.getTime() - 29 * 86400000);
    $("f-start").value = isoDay(monthAgo);
    $("f-end").value = isoDay(today);
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
      if (input && given.has(name)) input.value = given.get(name);
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
    const root = chart(figure, title, description || "No data.", width, height);
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
      { key: "new", label: "New", cls: "s-new" },
      { key: "resolved", label: "Resolved", cls: "s-resolved" },
    ];
    const band = 30;
    const width = 560;
    const left = 150;
    const height = 28 + Math.max(1, rows.length) * band;
    const max = Math.max(1, ...rows.flatMap((row) => series.map((s) => row[s.key])));
    const label = (row) => row.name || unnamed;
    const description = rows.map((row) => label(row) + ": " + row.new + " new, " + row.resolved + " resolved").join("; ");
    const root = chart(figure, title, description || "No data.", width, height);
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
      ? "Busiest: " + busiest.map((c) => WEEKDAYS[c.weekday] + " " + c.hour + ":00 " + c.new + " new").join(", ")
      : "No new conversations.";
    const root = chart(figure, "New conversations by weekday and local hour", description, width, height);
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
        svgEl("title", {}, WEEKDAYS[cell.weekday] + " " + cell.hour + ":00 · " + cell.new + " new · queue wait " + duration(cell.queue_wait_mean))
      );
      root.append(rect);
    }
  }

  /** The ratings table shows the newest (the API's limit); the summary counts them all. */
  function ratingsCaption(shown, figures) {
    const total = figures.csat.count + figures.nps.count;
    return shown < total ? "The newest " + shown + " of " + total + " ratings (CSV: all)" : total + " ratings";
  }

  /** Stars 1–5: how many ratings each. */
  function csatChart(figure, csat) {
    const width = 560;
    const height = 180;
    const counts = [1, 2, 3, 4, 5].map((star) => csat.distribution[String(star)] || 0);
    const max = Math.max(1, ...counts);
    const description = counts.map((count, index) => index + 1 + "★: " + count).join(", ");
    const title = "CSAT: " + csat.count + " ratings, average " + number(csat.average, 2);
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
    ["conversations.new", "New conversations", number],
    ["conversations.resolved", "Resolved", number],
    ["conversations.reopened", "Reopened", number],
    ["conversations.missed", "Missed", number],
    ["conversations.abandoned", "Abandoned", number],
    ["first_response.median", "First response, median", duration],
    ["first_response.p90", "First response, p90", duration],
    ["first_response_working_hours.median", "First response in working hours, median", duration],
    ["resolution.median", "Resolution, median", duration],
    ["queue_wait.mean", "Queue wait, mean", duration],
    ["messages_per_conversation", "Messages per conversation", (v) => number(v, 1)],
    ["escalations", "Escalations", number],
    ["transfers", "Transfers", number],
    ["csat.average", "CSAT average", (v) => number(v, 2)],
    ["nps.score", "NPS", (v) => number(v, 1)],
  ];

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
      empty.append(el("td", { colspan: String(columns.length) }, "No rows."));
      body.append(empty);
    }
    table.append(body);
  }

  const text = (value) => (value === null || value === undefined || value === "" ? "—" : String(value));
  const GROUP = [
    ["new", "New", number],
    ["resolved", "Resolved", number],
    ["reopened", "Reopened", number],
    ["missed", "Missed", number],
    ["first_response_median", "First response, median", duration],
    ["first_response_p90", "First response, p90", duration],
    ["resolution_median", "Resolution, median", duration],
    ["queue_wait_median", "Queue wait, median", duration],
    ["csat_average", "CSAT", (v) => number(v, 2)],
    ["csat_count", "Ratings", number],
    ["nps", "NPS", (v) => number(v, 1)],
  ];

  function groupTable(id, header, rows, unnamed) {
    renderTable(id, [["name", header, (v) => v || unnamed], ...GROUP], rows, rows.length + (rows.length === 1 ? " row" : " rows"));
  }

  // --- the page --------------------------------------------------------------------------------

  let generation = 0;

  async function load() {
    const current = ++generation;
    const params = query();
    const error = $("report-error");
    error.hidden = true;
    $("report-status").textContent = "Loading…";
    for (const link of document.querySelectorAll("a[data-csv]")) {
      link.href = config.urls[link.dataset.csv] + "csv/?" + params;
      link.setAttribute("download", "");
    }
    history.replaceState(null, "", window.location.pathname + "?" + params);
    const names = Object.keys(config.urls);
    let answers;
    try {
      answers = await Promise.all(names.map((name) => fetchJson(config.urls[name] + "?" + params)));
    } catch (failure) {
      if (current !== generation) return;
      error.textContent = "The report could not be loaded: " + failure.message;
      error.hidden = false;
      $("report-status").textContent = "";
      return;
    }
    if (current !== generation) return;
    const data = Object.fromEntries(names.map((name, index) => [name, answers[index]]));
    const range = data.summary.range;
    renderFigures(data.summary.figures);
    const series = data.series.results;
    lineChart($("chart-conversations"), "New and resolved conversations per day", series, [
      { key: "new", label: "New", cls: "s-new" },
      { key: "resolved", label: "Resolved", cls: "s-resolved" },
    ], number);
    lineChart($("chart-first-response"), "First response per day (median)", series, [
      { key: "first_response_median", label: "First response", cls: "s-response" },
    ], duration);
    renderTable("table-series", [
      ["date", "Day", text],
      ["new", "New", number],
      ["resolved", "Resolved", number],
      ["missed", "Missed", number],
      ["first_response_median", "First response, median", duration],
    ], series, series.length + " days");
    barChart($("chart-operators"), "Conversations per operator", data.operators.results, "Unassigned");
    groupTable("table-operators", "Operator", data.operators.results, "Unassigned");
    barChart($("chart-branches"), "Conversations per branch", data.branches.results, "No branch");
    groupTable("table-branches", "Branch", data.branches.results, "No branch");
    groupTable("table-regions", "Region", data.regions.results, "No region");
    heatMap($("chart-heatmap"), data.heatmap.results);
    csatChart($("chart-csat"), data.summary.figures.csat);
    renderTable("table-ratings", [
      ["rated_at", "Rated at", (v) => new Date(v).toLocaleString([], { timeZone: range.tz })],
      ["conversation_id", "Conversation", number],
      ["scale", "Scale", text],
      ["score", "Score", number],
      ["comment", "Comment", text],
    ], data.ratings.results, ratingsCaption(data.ratings.results.length, data.summary.figures));
    $("report-status").textContent = range.start + " – " + range.end + " (" + range.tz + ")";
    document.body.dataset.loaded = String(current);
  }

  initFilters();
  $("report-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  for (const select of document.querySelectorAll("#report-filters select")) select.addEventListener("change", load);
  load();
})();
