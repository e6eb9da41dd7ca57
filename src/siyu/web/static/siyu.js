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
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
})();
