/* Messenger loader: a few hundred bytes on the host page; widget.js is fetched on demand
 * (after data-load-after seconds, on scroll with data-load-on-scroll, or on first interaction).
 * Calls to window.ProfiMessenger made before then are queued and replayed by the widget. */
(function (w, d) {
  var s = d.currentScript, tok = s && s.getAttribute("data-widget-token");
  if (!tok || w.ProfiMessenger) return;
  var q = [], done = 0, evs = ["pointerdown", "keydown", "touchstart", "mousemove", "focusin"];
  var api = { _stub: 1, q: q, _cfg: { token: tok, origin: new URL(s.src, location.href).origin } };
  "open close toggle showLauncher hideLauncher on off".split(" ").forEach(function (m) {
    api[m] = function () {
      q.push([m, [].slice.call(arguments)]);
      if (m === "open" || m === "toggle") load();
      return api;
    };
  });
  w.ProfiMessenger = api;
  function load() {
    if (done++) return;
    evs.forEach(function (e) { w.removeEventListener(e, load, true); });
    w.removeEventListener("scroll", load);
    // collectstatic writes the hashed name into the first URL (messenger/staticfiles.py); the
    // second stays plain: a loader cached from before a release may name a widget that is gone.
    add(new URL("widget.js", s.src).href, new URL("./widget.js", s.src).href);
  }
  function add(src, fallback) {
    var x = d.createElement("script");
    x.src = src;
    x.async = true;
    x.setAttribute("data-widget-token", tok);
    ["data-language", "data-hide-launcher"].forEach(function (a) {
      if (s.hasAttribute(a)) x.setAttribute(a, s.getAttribute(a));
    });
    if (fallback) x.onerror = function () { x.remove(); add(fallback); };
    (d.head || d.documentElement).appendChild(x);
  }
  var after = parseFloat(s.getAttribute("data-load-after"));
  if (after >= 0) setTimeout(load, after * 1000);
  if (s.hasAttribute("data-load-on-scroll")) w.addEventListener("scroll", load, { passive: true, once: true });
  evs.forEach(function (e) { w.addEventListener(e, load, { capture: true, passive: true, once: true }); });
})(window, document);
