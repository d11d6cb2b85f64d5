/* Messenger formatting for the operator dashboard's composer preview and pending messages: the
 * rules of messenger/formatting.py, step for step, so that the preview shows what the server will
 * store. tests/test_formatting_browser.py renders tests/formatting_cases.json (and random bodies)
 * with both and compares. Every step is one regular expression pass whose matches stop at the next
 * character that could start another match, so a 150 000-character body renders in milliseconds. */
(() => {
  "use strict";

  // Python's \s and \w (Unicode), spelled out: JavaScript's own differ.
  const SPACE = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  const WORD = "\\p{L}\\p{N}_";
  const URL_CHAR = `[^${SPACE}<>"'\\x01-\\x07]`;
  // Units, as in messenger/formatting.py: a URL never ends inside a character reference (&gt;).
  const LONE_AMPERSAND = "&(?!#?[A-Za-z0-9]{1,32};)";
  const URL_RUN = `[^${SPACE}<>"'&\\x01-\\x07]*`;
  const URL_BODY = `${URL_RUN}(?:(?:&#?[A-Za-z0-9]{1,32};|&+(?!#?[A-Za-z0-9]{1,32};))${URL_RUN})*`;
  const URL_END = `(?:[^${SPACE}<>"'&\\x01-\\x07.,;:!?)]|${LONE_AMPERSAND})`;
  const SCHEME = "[Hh][Tt][Tt][Pp][Ss]?://";
  const CODE = "\x01", LINK = "\x02", URL = "\x03", STRONG = "\x04", END_STRONG = "\x05", EM = "\x06", END_EM = "\x07";

  const CODE_SPAN = /`([^`\n]{1,500})`/gu;
  const MARKDOWN_LINK = new RegExp(`\\[([^\\[\\]\\n]{1,200})\\]\\((${SCHEME}[^${SPACE}()<>"'\\x01-\\x07]+)\\)`, "gu");
  const BARE_URL = new RegExp(`(?<![${WORD}=])${SCHEME}(?=${URL_CHAR})(?:${URL_BODY}${URL_END})?`, "gu");
  const BOLD = new RegExp(`\\*\\*(?=[^${SPACE}])([\\s\\S]+?)(?<=[^${SPACE}])\\*\\*`, "gu");
  const BOLD_CLOSER = new RegExp(`(?<=[^${SPACE}])\\*\\*`, "uy");
  const ITALIC = new RegExp(`(?<![${WORD}/])_(?=[^${SPACE}])([\\s\\S]+?)(?<=[^${SPACE}])_(?![${WORD}])`, "gu");
  const ITALIC_CLOSER = new RegExp(`(?<=[^${SPACE}])_(?![${WORD}])`, "uy");
  const ANCHOR_REST = '" target="_blank" rel="noopener noreferrer nofollow">';

  const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;" })[c]);

  // Each placeholder in `text` replaced by the next of `rows`.
  const fill = (text, placeholder, rows) =>
    text.split(placeholder).map((part, index) => (index ? rows[index - 1] + part : part)).join("");

  /* Bold or italic pairs, matched only up to the last closer: an opener after it has nothing to
   * close it, and trying each such opener would scan to the end every time (quadratic). */
  function pairs(text, marker, pattern, closer, opening, closing) {
    for (let at = text.lastIndexOf(marker); at >= 0; at = at ? text.lastIndexOf(marker, at - 1) : -1) {
      closer.lastIndex = at;
      if (closer.test(text)) {
        const end = at + marker.length;
        return text.slice(0, end).replace(pattern, `${opening}$1${closing}`) + text.slice(end);
      }
    }
    return text;
  }

  function render(body) {
    let text = body.replace(/\r\n?/g, "\n").replace(/[\x00-\x07]/g, "\ufffd");
    const codes = [], links = [], urls = [];
    text = text.replace(CODE_SPAN, (_, code) => { codes.push(`<code>${escapeHtml(code)}</code>`); return CODE; });
    text = text.replace(MARKDOWN_LINK, (_, label, url) => { links.push(`<a href="${escapeHtml(url)}${ANCHOR_REST}${escapeHtml(label)}</a>`); return LINK; });
    text = text.replace(BARE_URL, (url) => { urls.push(`<a href="${escapeHtml(url)}${ANCHOR_REST}${escapeHtml(url)}</a>`); return URL; });
    text = pairs(text, "**", BOLD, BOLD_CLOSER, STRONG, END_STRONG);
    text = pairs(text, "_", ITALIC, ITALIC_CLOSER, EM, END_EM);
    text = escapeHtml(text).replace(/\n/g, "<br>").replaceAll(STRONG, "<strong>").replaceAll(END_STRONG, "</strong>")
      .replaceAll(EM, "<em>").replaceAll(END_EM, "</em>");
    // Labels may hold code placeholders: the links go back first, the code spans after them.
    return fill(fill(fill(text, URL, urls), LINK, links), CODE, codes);
  }

  window.MessengerFormatting = Object.freeze({ render });
})();
