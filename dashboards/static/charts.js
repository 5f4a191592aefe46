// Draws every element with data-chart from the JSON spec named by it, using the local Plotly.
// A spec may carry `links` (one URL per bar): clicking a bar opens it.
(function () {
  function draw(el) {
    var src = document.getElementById(el.getAttribute("data-chart"));
    if (!src || typeof Plotly === "undefined") { return; }
    var spec = JSON.parse(src.textContent);
    var layout = Object.assign({ margin: { l: 50, r: 10, t: 30, b: 80 }, bargap: 0.05 },
                               spec.layout || {});
    Plotly.newPlot(el, spec.data, layout, { displayModeBar: false, responsive: true })
      .then(function () {
        el.setAttribute("data-rendered", "1");
        if (spec.links) {
          el.on("plotly_click", function (ev) {
            var url = spec.links[ev.points[0].pointIndex];
            if (url) { window.location.href = url; }
          });
        }
      });
  }
  document.querySelectorAll("[data-chart]").forEach(draw);
})();
