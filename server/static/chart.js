// Token arrival over time, as an inline SVG: one line per run, no libraries.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 300;
const MARGIN = { top: 14, right: 16, bottom: 34, left: 46 };

function svgElement(name, attributes = {}, text = "") {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text) element.textContent = text;
  return element;
}

/** A "nice" upper bound and step for an axis that must reach `value`. */
function niceScale(value, ticks = 5) {
  const raw = Math.max(value, 1e-9) / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => s >= raw);
  return { max: Math.ceil(value / step) * step || step, step };
}

/** End-of-line labels ("#3"), nudged apart vertically so they never overlap. */
function placeLabels(labels) {
  const gap = 14;
  labels.sort((a, b) => a.y - b.y);
  for (let i = 1; i < labels.length; i += 1) {
    const above = labels[i - 1];
    if (Math.abs(labels[i].x - above.x) < 40 && labels[i].y - above.y < gap) {
      labels[i].y = above.y + gap;
    }
  }
  for (const { group, run, x, y } of labels) {
    const nearEdge = x > WIDTH - MARGIN.right - 30;
    group.append(
      svgElement(
        "text",
        { x: nearEdge ? x - 6 : x + 6, y: Math.max(y, MARGIN.top + 8), class: "series-label", "text-anchor": nearEdge ? "end" : "start" },
        run.label,
      ),
    );
  }
}

/**
 * Draws `runs` into `container`. Each run: {label, transport, arrivals: [[ms, tokens]],
 * reconnects: [[ms, tokens]], faded}.
 */
export function renderChart(container, runs) {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const lastTime = Math.max(1000, ...runs.flatMap((run) => run.arrivals.map(([ms]) => ms)));
  const lastCount = Math.max(10, ...runs.flatMap((run) => run.arrivals.map(([, n]) => n)));
  const xScale = niceScale(lastTime / 1000);
  const yScale = niceScale(lastCount, 4);
  const x = (ms) => MARGIN.left + (ms / 1000 / xScale.max) * plotWidth;
  const y = (count) => MARGIN.top + plotHeight - (count / yScale.max) * plotHeight;

  const svg = svgElement("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-labelledby": "chart-title",
    class: "chart-svg",
  });
  const summary = runs.length
    ? runs
        .map((run) => `${run.label}: ${run.arrivals.at(-1)?.[1] ?? 0} tokens`)
        .join("; ")
    : "no runs yet";
  svg.append(svgElement("title", { id: "chart-title" }, `Tokens over time — ${summary}`));

  const grid = svgElement("g", { class: "grid" });
  for (let value = 0; value <= yScale.max + 1e-9; value += yScale.step) {
    grid.append(
      svgElement("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(value), y2: y(value) }),
      svgElement("text", { x: MARGIN.left - 8, y: y(value) + 4, "text-anchor": "end" }, `${+value.toFixed(1)}`),
    );
  }
  for (let seconds = 0; seconds <= xScale.max + 1e-9; seconds += xScale.step) {
    const at = x(seconds * 1000);
    grid.append(
      svgElement("line", { x1: at, x2: at, y1: MARGIN.top, y2: MARGIN.top + plotHeight, class: "vertical" }),
      svgElement("text", { x: at, y: HEIGHT - 14, "text-anchor": "middle" }, `${+seconds.toFixed(2)} s`),
    );
  }
  grid.append(
    svgElement(
      "text",
      { x: 12, y: MARGIN.top + plotHeight / 2, "text-anchor": "middle", class: "axis-title", transform: `rotate(-90 12 ${MARGIN.top + plotHeight / 2})` },
      "tokens",
    ),
  );
  svg.append(grid);

  const labels = [];
  for (const run of runs) {
    if (!run.arrivals.length) continue;
    const group = svgElement("g", {
      class: `series series-${run.transport}${run.faded ? " faded" : ""}`,
    });
    // A step line: the count jumps when a token arrives.
    let path = `M${x(run.arrivals[0][0]).toFixed(1)},${y(0).toFixed(1)}`;
    for (const [ms, count] of run.arrivals) {
      path += `H${x(ms).toFixed(1)}V${y(count).toFixed(1)}`;
    }
    group.append(svgElement("path", { d: path }));
    for (const [ms, count] of run.reconnects) {
      group.append(svgElement("circle", { cx: x(ms), cy: y(count), r: 5, class: "reconnect" }));
    }
    labels.push({ group, run, y: y(run.arrivals.at(-1)[1]) - 6, x: x(run.arrivals.at(-1)[0]) });
    svg.append(group);
  }
  placeLabels(labels);

  if (!runs.some((run) => run.arrivals.length)) {
    svg.append(
      svgElement("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "empty-note" }, "Tokens will appear here as they arrive"),
    );
  }
  container.replaceChildren(svg);
}
