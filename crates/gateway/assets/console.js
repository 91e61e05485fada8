// Portcullis web console: progressive enhancement only. Times in the browser's zone (UTC stays
// in the title), the CSRF token on htmx's requests, and the charts (uPlot, loaded on pages
// that have one). Everything else works without this file.
(function () {
  "use strict";

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) {
        el.textContent = d.toLocaleString(undefined, {
          year: "numeric", month: "short", day: "numeric",
          hour: "2-digit", minute: "2-digit", second: "2-digit"
        });
      }
    });
  }

  // A chart: <div class="chart" data-series='{"x":[unix seconds], "series":[{"label":..,"values":[..]}]}'>.
  var COLORS = ["#1a7f37", "#b42318", "#bf8700", "#0b5cad", "#8250df", "#57606a"];
  function charts(root) {
    if (typeof uPlot === "undefined") { return; }
    root.querySelectorAll(".chart[data-series]").forEach(function (el) {
      if (el.dataset.drawn) { return; }
      el.dataset.drawn = "1";
      var spec = JSON.parse(el.dataset.series);
      var data = [spec.x];
      var series = [{}];
      spec.series.forEach(function (s, i) {
        data.push(s.values);
        series.push({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2,
                      fill: COLORS[i % COLORS.length] + "22" });
      });
      var width = Math.max(280, Math.min(el.clientWidth || 800, 1240));
      new uPlot({ width: width, height: 220, series: series,
                  axes: [{}, { size: 60 }], scales: { x: { time: true } } }, data, el);
      // The table under the chart holds the same numbers for readers of text.
    });
  }

  function enhance(root) { localTimes(root); charts(root); }

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  document.addEventListener("htmx:load", function (e) { enhance(e.target); });
  document.addEventListener("htmx:configRequest", function (e) {
    var m = document.querySelector('meta[name="csrf-token"]');
    if (m) { e.detail.headers["X-CSRF-Token"] = m.getAttribute("content"); }
  });
})();
