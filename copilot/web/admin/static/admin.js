// The admin pages' behaviour, kept out of the HTML so the Content-Security-Policy can
// refuse every inline script. Values come from data- attributes, which the browser hands
// over as plain text: nothing a user wrote is ever parsed as code here.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // <form data-confirm="question"> asks before it is sent.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  // <figure class="chart" data-figure="{plotly json}"> is drawn by Plotly (analytics).
  if (window.Plotly) {
    for (const el of document.querySelectorAll("figure.chart[data-figure]")) {
      const figure = JSON.parse(el.dataset.figure);
      window.Plotly.newPlot(el, figure.data, figure.layout, {displaylogo: false, responsive: true});
    }
  }
});
