// The staff reports' charts (Chart.js, vendored): the same numbers as the tables and the CSV.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var labelOf = data.labels;  // the column names in the reader's language
  var charts = [];
  function build(kind) {
    charts.forEach(function (c) { c.destroy(); });
    var rows = data[kind];
    var labels = rows.map(function (r) { return r.period; });
    function col(name) { return rows.map(function (r) { return r[name]; }); }
    function chart(id, type, datasets, options) {
      charts.push(new Chart(document.getElementById(id), {
        type: type, data: { labels: labels, datasets: datasets },
        options: Object.assign({ animation: false, responsive: true }, options || {})
      }));
    }
    chart("chart-money", "bar", [
      { label: labelOf.received, data: col("received") },
      { label: labelOf.refunded, data: col("refunded") }
    ]);
    chart("chart-bookings", "bar", [
      { label: labelOf.bookings, data: col("bookings"), yAxisID: "y" },
      { label: labelOf.fill_rate, data: col("fill_rate"), type: "line", yAxisID: "rate" }
    ], { scales: { y: { beginAtZero: true }, rate: { position: "right", min: 0, max: 100 } } });
    chart("chart-attendance", "line", [
      { label: labelOf.attendance_rate, data: col("attendance_rate") },
      { label: labelOf.no_show_rate, data: col("no_show_rate") }
    ], { scales: { y: { min: 0, max: 100 } } });
    chart("chart-people", "bar", [
      { label: labelOf.new_members, data: col("new_members") },
      { label: labelOf.passes_sold, data: col("passes_sold") }
    ]);
    document.body.setAttribute("data-report-kind", kind);
  }
  document.querySelectorAll("[data-kind]").forEach(function (button) {
    button.addEventListener("click", function () {
      document.querySelectorAll("[data-kind]").forEach(function (b) { b.classList.remove("active"); });
      button.classList.add("active");
      build(button.getAttribute("data-kind"));
    });
  });
  build("week");
})();
