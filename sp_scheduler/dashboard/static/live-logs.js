// Follows a running run's log lines: asks the logs endpoint for the lines after the last id shown,
// every second, until the run has finished and a last poll came back empty. No library, no build step.
(function () {
  "use strict";
  var box = document.getElementById("logs");
  if (!box || box.dataset.finished === "true") { return; }
  var state = document.getElementById("log-state");
  var after = Number(box.dataset.after || "0");
  var shown = new Set(Array.prototype.map.call(box.querySelectorAll(".line"), function (el) { return el.dataset.id; }));

  function add(line) {
    if (shown.has(String(line.id))) { return; }
    shown.add(String(line.id));
    var row = document.createElement("div");
    row.className = "line " + String(line.level).toLowerCase();
    row.dataset.id = line.id;
    [["at", line.created_at], ["level", line.level], ["message", line.message]].forEach(function (part, index) {
      var span = document.createElement("span");
      span.className = part[0];
      span.textContent = part[1];
      if (index > 0) { row.appendChild(document.createTextNode(" ")); }
      row.appendChild(span);
    });
    if (line.fields && line.fields.traceback) {
      var pre = document.createElement("pre");
      pre.textContent = line.fields.traceback;
      row.appendChild(pre);
    }
    box.appendChild(row);
  }

  function poll() {
    fetch(box.dataset.url + "?after=" + after, { headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (page) {
        page.logs.forEach(add);
        after = page.next_after;
        var status = document.getElementById("run-status");
        if (status) { status.textContent = page.status; }
        if (page.finished && page.logs.length === 0) {
          state.textContent = "the run has finished";
          return;
        }
        setTimeout(poll, page.logs.length ? 200 : 1000);
      })
      .catch(function (error) {
        state.textContent = "cannot reach the server (" + error.message + "); retrying";
        setTimeout(poll, 3000);
      });
  }
  poll();
}());
