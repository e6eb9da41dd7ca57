// Siyu 私域: progressive enhancement only; every page works without this file.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  // Avoid double submits (slow WeCom calls): disable the button once the form goes.
  var button = form.querySelector("button[type=submit]");
  if (button && form.method.toLowerCase() === "post") {
    setTimeout(function () { button.disabled = true; }, 0);
  }
});
document.addEventListener("change", function (event) {
  // Filters: apply a select at once (the 搜索 button still works without JS).
  var el = event.target;
  if (el.tagName === "SELECT" && el.form && el.form.classList.contains("filters")) {
    el.form.submit();
  }
});
// "Saved" banners come from ?done= in the address: once shown, drop it, so that reloading the
// page (the SLA board reloads itself every 30 s) does not show the banner again.
(function () {
  if (!/[?&]done=/.test(location.search) || !window.history || !history.replaceState) return;
  var url = new URL(location.href);
  url.searchParams.delete("done");
  // (whose, and where: said by the banner)
  ["snoozed", "dismissed", "gone", "newest"].forEach(function (name) { url.searchParams.delete(name); });
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
})();
// A form refused is shown again at the address it was sent to, which is no page (a reload
// would send the form again): the page's own address, data-address, takes its place.
(function () {
  var shown = document.querySelector("[data-address]");
  if (!shown || !window.history || !history.replaceState) return;
  history.replaceState(history.state, "", shown.getAttribute("data-address"));
})();
// Pages that show who waits (the SLA board, the conversation list): reloaded every
// data-refresh seconds while in sight, unless the user is in the middle of a form.
// A form being filled in: its focus, or anything typed or chosen not yet sent (a search
// typed and left when the phone's keyboard closed).
// A fold the user opened or closed (the list's 筛选) counts too: a reload would undo it.
(function () {
  var folds = document.querySelectorAll("details");
  for (var k = 0; k < folds.length; k++) folds[k].defaultOpen = folds[k].open;
})();
function siyuBusy() {
  if (document.activeElement && document.activeElement.closest("form")) return true;
  var folds = document.querySelectorAll("details");
  for (var k = 0; k < folds.length; k++) {
    if (folds[k].open !== folds[k].defaultOpen) return true;
  }
  var fields = document.querySelectorAll("form input, form textarea, form select");
  for (var i = 0; i < fields.length; i++) {
    var f = fields[i];
    if (f.tagName === "SELECT") {
      // a single choice with no option marked selected shows its first: that is no change
      var shown = 0;
      for (var j = 0; j < f.options.length; j++) {
        if (f.options[j].defaultSelected) shown = j;
        if (f.multiple && f.options[j].selected !== f.options[j].defaultSelected) return true;
      }
      if (!f.multiple && f.options.length && f.selectedIndex !== shown) return true;
    } else if (f.type === "checkbox" || f.type === "radio") {
      if (f.checked !== f.defaultChecked) return true;
    } else if (f.type !== "hidden" && f.value !== f.defaultValue) {
      return true;
    }
  }
  return false;
}
(function () {
  var el = document.querySelector("[data-refresh]");
  if (!el) return;
  setInterval(function () {
    if (document.visibilityState === "visible" && !siyuBusy()) location.reload();
  }, parseInt(el.getAttribute("data-refresh"), 10) * 1000);
})();
// A chat: asked every 15 s whether it changed (data-live-url answers its version: messages,
// the wait, the last message's time, which a recall or a consent event moves too). Then it is
// reloaded if the user is at the newest messages and not writing; else a notice offers the
// reload, so nobody loses their place or what they typed.
(function () {
  var el = document.querySelector("[data-live-url]");
  if (!el || !window.fetch) return;
  // a reload lands on the newest message (the page's own scroll), not where the last one was:
  // restored there, the new message sat below the screen and the next change went unseen
  if ("scrollRestoration" in history) history.scrollRestoration = "manual";
  var version = el.getAttribute("data-live-version");
  setInterval(function () {
    if (document.visibilityState !== "visible") return;
    fetch(el.getAttribute("data-live-url"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (c) {
        if (!c || c.version === version) return;
        var busy = siyuBusy();
        var atEnd = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 150;
        var reading = /^#m\d+$/.test(location.hash) || /[?&]before=/.test(location.search);
        if (!busy && atEnd && !reading) {
          location.reload();
        } else {
          var notice = document.getElementById("live-notice");
          if (notice) notice.hidden = false;
        }
      })
      .catch(function () {});
  }, 15000);
})();
// Wait counters (data-waited: seconds when the page was made) keep ticking, in the words the
// server writes them (siyu.conversations.queries.wait_text); the page works without this.
(function () {
  var els = document.querySelectorAll("[data-waited]");
  if (!els.length) return;
  var start = Date.now();
  function text(s) {
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
    if (d) return d + " 天" + (h ? " " + h + " 小时" : "");
    if (h) return h + " 小时" + (m ? " " + m + " 分" : "");
    if (m) return m + " 分 " + x + " 秒";
    return x + " 秒";
  }
  setInterval(function () {
    var passed = Math.floor((Date.now() - start) / 1000);
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      el.textContent = (el.getAttribute("data-waited-prefix") || "") +
        text(parseInt(el.getAttribute("data-waited"), 10) + passed);
    }
  }, 1000);
})();
