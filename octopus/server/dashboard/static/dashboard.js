// Octopus dashboard: live refresh over Server-Sent Events, and small form helpers.
// No data is ever built into code here: pages carry what the script needs in data- attributes.
"use strict";

(function () {
  var topics = (document.body.dataset.liveTopics || "").split(" ").filter(Boolean);
  var indicator = document.getElementById("live-status");
  var timer = null;
  var busy = false;
  var again = false;

  function setIndicator(text, on) {
    if (!indicator) return;
    indicator.textContent = text;
    indicator.className = on ? "live-on" : "live-off";
  }

  function atBottom(element) {
    return element.scrollHeight - element.scrollTop - element.clientHeight < 24;
  }

  function swap(fresh) {
    document.querySelectorAll("[data-live]").forEach(function (old) {
      var replacement = fresh.getElementById(old.id);
      if (!replacement) return;
      var log = old.querySelector("[data-follow]");
      var follow = log ? atBottom(log) : false;
      old.replaceWith(document.importNode(replacement, true));
      var newLog = document.getElementById(log ? log.id : "");
      if (newLog && follow) newLog.scrollTop = newLog.scrollHeight;
    });
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live": "1" } })
      .then(function (response) {
        var type = response.headers.get("content-type") || "";
        if (!response.ok || type.indexOf("text/html") !== 0 || response.redirected) return null;
        return response.text();
      })
      .then(function (html) {
        if (html !== null) swap(new DOMParser().parseFromString(html, "text/html"));
      })
      .catch(function () { /* the next change event tries again */ })
      .finally(function () {
        busy = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 100);
  }

  if (topics.length && window.EventSource) {
    var source = new EventSource("/events");
    // What changed between this page's render and the stream's (re)opening was never sent to
    // it: catch up once on every open.
    source.addEventListener("open", function () { setIndicator("live", true); schedule(); });
    source.addEventListener("error", function () { setIndicator("reconnecting", false); });
    source.addEventListener("change", function (event) {
      if (topics.indexOf(event.data) !== -1) schedule();
    });
  }

  function showFields() {
    document.querySelectorAll("[data-show-for]").forEach(function (box) {
      var rule = box.dataset.showFor.split(":");
      var control = document.querySelector("select[name='" + rule[0] + "']");
      var shown = !control || rule[1].split(",").indexOf(control.value) !== -1;
      box.hidden = !shown;
      box.querySelectorAll("input, select").forEach(function (input) { input.disabled = !shown; });
    });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-autosubmit]")) {
      if (target.name === "plugin") {
        var action = target.form.querySelector("select[name='action']");
        if (action) action.disabled = true;
      }
      target.form.submit();
      return;
    }
    showFields();
  });
  showFields();

  document.querySelectorAll("pre[data-follow]").forEach(function (log) {
    log.scrollTop = log.scrollHeight;
  });
})();
