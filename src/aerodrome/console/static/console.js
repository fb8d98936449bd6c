// Aerodrome console: draws the dashboard charts from the JSON the page carries. No inline script.
(function () {
  "use strict";
  function draw() {
    var node = document.getElementById("dashboard-data");
    if (!node || typeof Chart === "undefined") return;
    var data = JSON.parse(node.textContent);
    var palette = ["#2457c5", "#d9822b", "#1b8a5a", "#a23b72", "#6b4fbb", "#7a7a7a", "#c23030", "#0f9aa8"];
    var common = { responsive: true, maintainAspectRatio: false, animation: false,
                   plugins: { legend: { position: "bottom" } } };
    var adoption = document.getElementById("chart-adoption");
    if (adoption) {
      new Chart(adoption, { type: "line", options: common, data: {
        labels: data.days,
        datasets: data.adoption.departments.map(function (dept, i) {
          return { label: dept, data: data.adoption.active_users[dept], borderColor: palette[i % palette.length],
                   backgroundColor: palette[i % palette.length], tension: 0.2 };
        }) } });
    }
    var runsChart = document.getElementById("chart-runs");
    if (runsChart) {
      new Chart(runsChart, { type: "bar", options: common, data: { labels: data.days, datasets: [
        { label: "runs", data: data.operations.runs, backgroundColor: "#2457c5" },
        { label: "errors", data: data.operations.errors, backgroundColor: "#c23030" } ] } });
    }
    var latency = document.getElementById("chart-latency");
    if (latency) {
      new Chart(latency, { type: "line", options: common, data: { labels: data.days, datasets: [
        { label: "average latency (ms)", data: data.operations.latency_ms, borderColor: "#d9822b",
          backgroundColor: "#d9822b" } ] } });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw); else draw();
})();
