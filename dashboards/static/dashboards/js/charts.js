/* Draws every <canvas data-chart="ID"> from the JSON in <script type="application/json" id="ID">
 * (written by Django's json_script).  No inline script anywhere: the pages stay CSP-clean. */
(function () {
  "use strict";
  if (typeof window.Chart === "undefined") {
    return;
  }
  var palette = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2"];

  function percentTick(value) {
    return (value * 100).toFixed(0) + "%";
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) {
      return;
    }
    var spec = JSON.parse(source.textContent);
    var datasets = (spec.datasets || []).map(function (set, index) {
      var colour = palette[index % palette.length];
      return {
        label: set.label,
        data: set.data,
        backgroundColor: colour,
        borderColor: colour,
        spanGaps: false
      };
    });
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      indexAxis: spec.horizontal ? "y" : "x",
      plugins: { legend: { display: datasets.length > 1 } },
      scales: {}
    };
    var valueAxis = spec.horizontal ? "x" : "y";
    options.scales[valueAxis] = { beginAtZero: true };
    if (spec.percent) {
      options.scales[valueAxis].ticks = { callback: percentTick };
    }
    var chart = new window.Chart(canvas, { type: spec.type || "bar", data: { labels: spec.labels, datasets: datasets }, options: options });
    canvas.setAttribute("data-chart-ready", "true");
    return chart;
  }

  function drawAll() {
    var canvases = document.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) {
      draw(canvases[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
