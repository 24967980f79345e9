// The dashboard's behaviour: charts, the stage-move dialog, and live refresh.
"use strict";
(function () {
  const charts = [];

  function chartData(name) {
    const node = document.querySelector(`script[data-for="${name}"]`);
    return node ? JSON.parse(node.textContent) : null;
  }

  function drawCharts() {
    while (charts.length) charts.pop().destroy();
    if (typeof Chart === "undefined") return;
    document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      const kind = canvas.dataset.chart;
      const data = chartData(canvas.dataset.source || kind);
      if (!data) return;
      const animation = false;
      if (kind === "funnel") {
        charts.push(new Chart(canvas, {
          type: "bar",
          data: { labels: data.labels, datasets: [{ label: "open amount", data: data.amounts, backgroundColor: data.colours }] },
          options: { indexAxis: "y", animation, plugins: { legend: { display: false } } },
        }));
      } else if (kind === "trend") {
        charts.push(new Chart(canvas, {
          type: "line",
          data: { labels: data.labels, datasets: data.series.map((s) => ({ label: s.label, data: s.values, tension: 0.2 })) },
          options: { animation },
        }));
      } else if (kind === "bars") {
        const stacked = Boolean(data.stacked);
        charts.push(new Chart(canvas, {
          type: "bar",
          data: { labels: data.labels, datasets: data.series.map((s) => ({ label: s.label, data: s.values })) },
          options: { animation, scales: { x: { stacked }, y: { stacked } } },
        }));
      } else if (kind === "waterfall") {
        // Floating bars [low, high]: the start, each change from where the last left off, the end.
        charts.push(new Chart(canvas, {
          type: "bar",
          data: { labels: data.labels, datasets: [{ label: "pipeline", data: data.bars, backgroundColor: data.colours }] },
          options: {
            animation,
            plugins: {
              legend: { display: false },
              tooltip: { callbacks: { label: (item) => `${data.deltas[item.dataIndex] >= 0 && item.dataIndex > 0 && item.dataIndex < data.deltas.length - 1 ? "+" : ""}${data.deltas[item.dataIndex].toLocaleString()}` } },
            },
          },
        }));
      }
    });
  }

  // Moving a deal from the board: the dialog asks for the reason the rule needs.
  function openMove(button) {
    const dialog = document.getElementById("move-dialog");
    const form = dialog.querySelector("form");
    form.action = `/web/deals/${button.dataset.move}/stage`;
    form.dataset.current = button.dataset.stage;
    dialog.querySelector("h2").textContent = `Move “${button.dataset.title}” (now stage ${button.dataset.stage})`;
    const select = form.elements.to_stage;
    select.value = String(Math.min(7, Number(button.dataset.stage) + 1));
    form.elements.reason.value = "";
    form.querySelector(".error").hidden = true;
    requireReason(form);
    dialog.returnFocus = button;
    dialog.showModal();
    select.focus();
  }

  function requireReason(form) {
    const back = Number(form.elements.to_stage.value) < Number(form.dataset.current);
    form.elements.reason.required = back;
    form.elements.reason.setAttribute("aria-required", String(back));
  }

  async function submitMove(form) {
    const response = await fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const body = await response.json();
    if (!response.ok) {
      const error = form.querySelector(".error");
      error.textContent = body.message;
      error.hidden = false;
      return;
    }
    const dialog = form.closest("dialog");
    dialog.close();
    announce("Move recorded; the board updates.");
    refresh();
  }

  document.addEventListener("click", (event) => {
    const move = event.target.closest("[data-move]");
    if (move) { openMove(move); return; }
    if (event.target.closest("[data-close]")) event.target.closest("dialog").close();
  });
  document.addEventListener("change", (event) => {
    if (event.target.name === "to_stage") requireReason(event.target.form);
  });
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches("[data-move-form]")) return;
    event.preventDefault();
    submitMove(form).catch((error) => { form.querySelector(".error").textContent = String(error); form.querySelector(".error").hidden = false; });
  });
  document.addEventListener("close", (event) => {
    if (event.target.returnFocus && document.body.contains(event.target.returnFocus)) event.target.returnFocus.focus();
  }, true);

  function announce(text) {
    const status = document.getElementById("live-status");
    if (status) status.textContent = text;
  }

  // Live: poll the data version (ETag); when it moves, fetch this page again and swap <main>.
  let version = null;
  let busy = false;

  function editing(main) {
    if (main.querySelector("dialog[open]")) return true;
    const active = document.activeElement;
    return active && main.contains(active) && active.matches("input, textarea, select");
  }

  async function refresh() {
    const main = document.getElementById("main");
    const response = await fetch(location.href, { headers: { "X-Live-Refresh": "1" }, credentials: "same-origin" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("main");
    if (!fresh || editing(main)) return;
    const focusedId = document.activeElement && document.activeElement.id;
    // Disclosures the reader opened or closed stay so (those with an id).
    const disclosed = new Map([...main.querySelectorAll("details[id]")].map((d) => [d.id, d.open]));
    main.innerHTML = fresh.innerHTML;
    main.querySelectorAll("details[id]").forEach((d) => { if (disclosed.has(d.id)) d.open = disclosed.get(d.id); });
    main.dataset.version = fresh.dataset.version || "";
    drawCharts();
    if (focusedId && document.getElementById(focusedId)) document.getElementById(focusedId).focus();
    document.dispatchEvent(new CustomEvent("ledger:refreshed"));
  }

  async function poll() {
    const main = document.getElementById("main");
    if (!main || !main.dataset.version || busy) return;
    busy = true;
    try {
      version = version || main.dataset.version;
      const response = await fetch("/web/live", { headers: { "If-None-Match": `"${version}"` }, credentials: "same-origin" });
      if (response.status === 200) {
        const next = (response.headers.get("ETag") || "").replace(/"/g, "");
        if (next && next !== version && !editing(main)) {
          version = next;
          await refresh();
        }
      }
    } catch (error) {
      // The server may be restarting: try again at the next tick.
    } finally {
      busy = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    drawCharts();
    setInterval(poll, 400);
  });
})();
