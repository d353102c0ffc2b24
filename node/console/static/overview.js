// The overview's live part: every 5 s it fetches api/overview (the figures the page was
// rendered with, in words made by the server), copies them in, and draws the charts of the
// last hour as inline SVG. Built with DOM calls only: names go in through textContent.
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const POLL_MS = 5000;
  const HOUR_MS = 3600 * 1000;
  const MIN_SPAN_MS = 60 * 1000;
  const WIDTH = 640;
  const HEIGHT = 170;
  const PAD = { left: 48, right: 10, top: 10, bottom: 22 };
  const SERIES_CLASSES = 6; // overview.css colours series-0 .. series-5

  function svg(name, attributes, parent) {
    const element = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) {
      element.setAttribute(key, String(value));
    }
    if (parent) {
      parent.appendChild(element);
    }
    return element;
  }

  function text(name, content, parent, className) {
    const element = document.createElement(name);
    element.textContent = content;
    if (className) {
      element.className = className;
    }
    if (parent) {
      parent.appendChild(element);
    }
    return element;
  }

  function clear(element) {
    while (element.firstChild) {
      element.removeChild(element.firstChild);
    }
  }

  // A step of 1, 2 or 5 times a power of ten, so that the axis reads well.
  function niceMax(value) {
    if (!(value > 0)) {
      return 1;
    }
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 5, 10]) {
      if (value <= step * power) {
        return step * power;
      }
    }
    return 10 * power;
  }

  function ago(ms) {
    const seconds = Math.round(ms / 1000);
    return seconds < 120 ? `${seconds} s` : `${Math.round(seconds / 60)} min`;
  }

  function label(content, x, y, anchor, parent) {
    const element = svg("text", { x: x, y: y, "text-anchor": anchor, class: "axis-label" }, parent);
    element.textContent = content;
  }

  // lines: [{name, points: [[time ms, value], ...]}]
  function drawChart(figure, lines, nowMs, unit) {
    const plot = figure.querySelector(".plot");
    clear(plot);
    // The last hour, or less while the node has not sampled for an hour yet (at least a
    // minute): the line fills the chart from the first sample on.
    let first = nowMs - MIN_SPAN_MS;
    let top = 0;
    let count = 0;
    for (const line of lines) {
      for (const point of line.points) {
        if (point[0] >= nowMs - HOUR_MS) {
          first = Math.min(first, point[0]);
          top = Math.max(top, point[1]);
          count += 1;
        }
      }
    }
    const start = Math.max(first, nowMs - HOUR_MS);
    const span = nowMs - start;
    const yMax = niceMax(top);
    const innerW = WIDTH - PAD.left - PAD.right;
    const innerH = HEIGHT - PAD.top - PAD.bottom;
    const x = (time) => PAD.left + (Math.min(time - start, span) / span) * innerW;
    const y = (value) => PAD.top + innerH - (Math.min(value, yMax) / yMax) * innerH;
    const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", class: "chart-svg" }, plot);
    svg("title", {}, chart).textContent = figure.querySelector("figcaption").textContent;
    for (const fraction of [0, 0.5, 1]) {
      const level = PAD.top + innerH * (1 - fraction);
      svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: level, y2: level, class: "grid" }, chart);
      label(`${+(yMax * fraction).toPrecision(3)}${unit}`, PAD.left - 4, level + 4, "end", chart);
    }
    label(`${ago(span)} ago`, PAD.left, HEIGHT - 6, "start", chart);
    label(`${ago(span / 2)} ago`, PAD.left + innerW / 2, HEIGHT - 6, "middle", chart);
    label("now", WIDTH - PAD.right, HEIGHT - 6, "end", chart);
    lines.forEach((line, index) => {
      const shown = line.points.filter((point) => point[0] >= start);
      const cls = `series series-${index % SERIES_CLASSES}`;
      if (shown.length === 1) {
        svg("circle", { cx: x(shown[0][0]), cy: y(shown[0][1]), r: 2.5, class: cls }, chart);
      } else if (shown.length > 1) {
        const points = shown.map((point) => `${x(point[0]).toFixed(1)},${y(point[1]).toFixed(1)}`);
        svg("polyline", { points: points.join(" "), class: cls }, chart);
      }
    });
    if (count === 0) {
      label("collecting samples…", PAD.left + innerW / 2, PAD.top + innerH / 2, "middle", chart);
    }
    const legend = text("ul", "", plot, "legend");
    lines.forEach((line, index) => {
      const item = text("li", "", legend);
      text("span", "", item, `swatch series-${index % SERIES_CLASSES}`);
      text("span", line.name, item);
    });
    figure.dataset.points = String(count); // for tests: how many points are drawn
  }

  function peerRow(peer, columns) {
    const row = document.createElement("tr");
    row.dataset.peer = peer.peer;
    for (const column of columns) {
      const cell = text("td", peer.shown[column] || "", row);
      cell.dataset.column = column;
      if (column === "peer") {
        cell.className = "name";
      } else if (column === "link") {
        cell.className = `link-${peer.shown.link}`;
      } else if (column === "state") {
        cell.className = `state state-${peer.state.replace(/ /g, "-")}`;
      }
    }
    return row;
  }

  function updatePeers(table, peers) {
    const columns = Array.from(table.querySelectorAll("thead th")).map((th) => th.dataset.column);
    const body = table.querySelector("tbody");
    clear(body);
    if (peers.length === 0) {
      const row = text("tr", "", body, "empty");
      const cell = text("td", "No peers: this node replicates with no one.", row);
      cell.colSpan = columns.length;
      return;
    }
    for (const peer of peers) {
      body.appendChild(peerRow(peer, columns));
    }
  }

  function update(root, doc) {
    for (const element of root.querySelectorAll("[data-shown]")) {
      const value = doc.shown[element.dataset.shown];
      if (typeof value === "string") {
        element.textContent = value;
      }
    }
    updatePeers(root.querySelector("#peer-table"), doc.peers);
    drawChart(
      root.querySelector("#chart-requests"),
      [
        { name: "requests/s", points: doc.series.requests },
        { name: "5xx errors/s", points: doc.series.errors },
      ],
      doc.now_ms,
      "",
    );
    const lags = Object.keys(doc.series.lag)
      .sort()
      .map((peer) => ({ name: peer, points: doc.series.lag[peer] }));
    drawChart(root.querySelector("#chart-lag"), lags, doc.now_ms, " s");
  }

  function start() {
    const root = document.getElementById("overview");
    const initial = document.getElementById("overview-data");
    if (!root || !initial) {
      return;
    }
    const status = document.getElementById("refresh-status");
    update(root, JSON.parse(initial.textContent));
    let timer = null;
    async function poll() {
      try {
        const answer = await fetch(root.dataset.api, {
          credentials: "same-origin",
          headers: { accept: "application/json" },
        });
        if (answer.status === 401) {
          status.textContent = "Signed out: reload the page to sign in again.";
          clearInterval(timer);
          return;
        }
        if (!answer.ok) {
          status.textContent = `Update failed: HTTP ${answer.status}.`;
          return;
        }
        update(root, await answer.json());
        status.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
      } catch (error) {
        status.textContent = `Update failed: ${error.message}`;
      }
    }
    timer = setInterval(poll, POLL_MS);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
