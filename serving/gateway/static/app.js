// Web page of the digits-and-sensors gateway: draw a digit and see the prediction; score a sensor series.
// Vanilla JS, no libraries, no inline code (the page is served with CSP default-src 'self').
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PREDICT_DEBOUNCE_MS = 150;
  const INK_WIDTH = 20;

  const $ = (id) => document.getElementById(id);

  // ---- API -------------------------------------------------------------------------------------------

  // When the gateway requires API keys it answers 401: the page asks for a key once and keeps it for the tab.
  const KEY_STORAGE = "gateway-api-key";
  const KEY_PROMPT = "This gateway needs an API key. Ask its operator for one (keys are made with " +
    "`python -m serving.gateway.apikeys add NAME`, see docs/security.md) and paste it here:";

  function withKey(options, key) {
    return key ? { ...options, headers: { ...(options.headers || {}), "X-API-Key": key } } : options;
  }

  /** POST/GET a same-origin API path; resolves to the JSON answer, rejects with the gateway's message. */
  async function callApi(path, options = {}, askedForKey = false) {
    const usedKey = sessionStorage.getItem(KEY_STORAGE);
    let response;
    try {
      response = await fetch(path, withKey(options, usedKey));
    } catch (err) {
      throw new Error("the gateway cannot be reached");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (response.status === 401 && !askedForKey) {
      const stored = sessionStorage.getItem(KEY_STORAGE);
      if (stored && stored !== usedKey) {
        return callApi(path, options, true); // another request already asked meanwhile
      }
      const key = window.prompt(KEY_PROMPT);
      if (key && key.trim()) {
        sessionStorage.setItem(KEY_STORAGE, key.trim());
        return callApi(path, options, true);
      }
    }
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
      throw new Error(message);
    }
    return body;
  }

  // ---- Digit pad -------------------------------------------------------------------------------------

  const pad = $("pad");
  const ctx = pad.getContext("2d");
  let hasInk = false;
  let lastPoint = null;
  let activePointer = null;
  let debounceTimer = null;
  let predictSeq = 0;

  function clearPad() {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
    hasInk = false;
    predictSeq += 1; // answers to earlier drawings are now stale
    clearTimeout(debounceTimer);
    showPrediction(null, "Draw a digit to see what the model reads.");
  }

  function padPoint(event) {
    const rect = pad.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) * pad.width) / rect.width,
      y: ((event.clientY - rect.top) * pad.height) / rect.height,
    };
  }

  function strokeTo(point) {
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineWidth = INK_WIDTH;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    if (lastPoint) {
      ctx.beginPath();
      ctx.moveTo(lastPoint.x, lastPoint.y);
      ctx.lineTo(point.x, point.y);
      ctx.stroke();
    } else {
      ctx.beginPath();
      ctx.arc(point.x, point.y, INK_WIDTH / 2, 0, 2 * Math.PI);
      ctx.fill();
    }
    lastPoint = point;
    hasInk = true;
  }

  pad.addEventListener("pointerdown", (event) => {
    if (activePointer !== null) return;
    event.preventDefault();
    activePointer = event.pointerId;
    pad.setPointerCapture(event.pointerId);
    pad.focus();
    lastPoint = null;
    strokeTo(padPoint(event));
    schedulePredict();
  });

  pad.addEventListener("pointermove", (event) => {
    if (event.pointerId !== activePointer) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const each of events.length ? events : [event]) strokeTo(padPoint(each));
    schedulePredict();
  });

  function endStroke(event) {
    if (event.pointerId !== activePointer) return;
    activePointer = null;
    lastPoint = null;
    clearTimeout(debounceTimer);
    predictNow();
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  pad.addEventListener("keydown", (event) => {
    if (event.key === "Escape" || event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      clearPad();
    }
  });
  $("clear").addEventListener("click", () => {
    clearPad();
    pad.focus();
  });

  function schedulePredict() {
    clearTimeout(debounceTimer);
    debounceTimer = setTimeout(predictNow, PREDICT_DEBOUNCE_MS);
  }

  function canvasPng() {
    return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
  }

  async function predictNow() {
    if (!hasInk) return;
    const seq = ++predictSeq;
    try {
      const png = await canvasPng();
      const answer = await callApi("/v1/digits:predict", {
        method: "POST",
        headers: { "Content-Type": "image/png" },
        body: png,
      });
      if (seq === predictSeq) showPrediction(answer.predictions[0]);
    } catch (err) {
      if (seq === predictSeq) showPrediction(null, `Could not classify the drawing: ${err.message}`);
    }
  }

  // ---- Prediction view -------------------------------------------------------------------------------

  const probabilityRows = [];

  function buildProbabilityRows() {
    const list = $("probabilities");
    for (let digit = 0; digit < 10; digit += 1) {
      const item = document.createElement("li");
      item.className = "probability";
      const label = document.createElement("span");
      label.className = "probability-digit";
      label.textContent = String(digit);
      const bar = document.createElement("span");
      bar.className = "probability-bar";
      bar.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = "probability-fill";
      bar.appendChild(fill);
      const value = document.createElement("span");
      value.className = "probability-value";
      item.append(label, bar, value);
      list.appendChild(item);
      probabilityRows.push({ item, fill, value });
    }
  }

  /** A score in [0, 1] with enough digits to tell 0.9995 from 1 (scores near 1 matter most). */
  function formatScore(score) {
    return String(Number(score.toPrecision(4)));
  }

  function percent(p) {
    return `${(100 * p).toFixed(1)}%`;
  }

  function showPrediction(prediction, message) {
    const digit = $("digit");
    const text = $("digit-text");
    probabilityRows.forEach((row, index) => {
      const p = prediction ? prediction.probabilities[index] : 0;
      row.fill.style.width = percent(p);
      row.value.textContent = prediction ? percent(p) : "–";
      row.item.classList.toggle("top", Boolean(prediction) && index === prediction.digit);
    });
    if (prediction) {
      digit.textContent = String(prediction.digit);
      text.textContent = `The model reads a ${prediction.digit} with ${percent(prediction.confidence)} confidence.`;
    } else {
      digit.textContent = "–";
      text.textContent = message;
    }
  }

  // ---- Series input ----------------------------------------------------------------------------------

  /** Parse pasted text: CSV with a header (timestamp first) or plain numbers, one per line. */
  function parseSeriesText(text, intervalSeconds) {
    const lines = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== "");
    if (lines.length === 0) throw new Error("there are no values to score");
    if (lines[0].includes(",")) {
      const header = lines[0].split(",").map((name) => name.trim());
      if (header.length < 2) throw new Error("the CSV header needs timestamp and at least one sensor");
      const rows = lines.slice(1).map((line) => line.split(","));
      const sensors = header.slice(1);
      const columns = {};
      sensors.forEach((name, i) => {
        columns[name] = rows.map((cells) => parseFloat(cells[i + 1]));
      });
      return { csv: lines.join("\n") + "\n", timestamps: rows.map((cells) => cells[0]), columns };
    }
    const values = lines.map((line) => Number(line));
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`line ${bad + 1} is not a number: "${lines[bad]}"`);
    const start = Math.floor(Date.now() / 1000 / intervalSeconds) * intervalSeconds;
    const timestamps = values.map((_, i) => new Date((start + i * intervalSeconds) * 1000).toISOString());
    return { csv: null, timestamps, columns: { value: values } };
  }

  async function scoreSeries(event) {
    if (event) event.preventDefault();
    const status = $("series-status");
    const interval = Number($("interval").value) || 300;
    let parsed;
    try {
      parsed = parseSeriesText($("series-text").value, interval);
    } catch (err) {
      status.textContent = `Cannot score: ${err.message}.`;
      return;
    }
    const params = new URLSearchParams();
    const threshold = $("threshold").value.trim();
    const sensitivity = $("sensitivity").value.trim();
    if (threshold !== "") params.set("threshold", threshold);
    else if (sensitivity !== "") params.set("sensitivity", sensitivity);
    if ($("model").value) params.set("model", $("model").value);
    const query = params.toString() === "" ? "" : `?${params}`;
    const request = parsed.csv
      ? { headers: { "Content-Type": "text/csv" }, body: parsed.csv }
      : {
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ timestamps: parsed.timestamps, values: parsed.columns.value }),
        };
    status.textContent = `Scoring ${parsed.timestamps.length} points…`;
    $("score").disabled = true;
    try {
      const answer = await callApi(`/v1/anomaly:score${query}`, { method: "POST", ...request });
      drawChart(parsed, answer);
      listSegments(answer.anomalies);
      const scored = answer.points.filter((p) => p.score !== null).length;
      status.textContent =
        `${answer.points.length} points, ${scored} scored, threshold ${formatScore(answer.threshold)}: ` +
        `${answer.anomalies.length} event${answer.anomalies.length === 1 ? "" : "s"}` +
        `${answer.gaps.length ? `, ${answer.gaps.length} outage${answer.gaps.length === 1 ? "" : "s"}` : ""} ` +
        `(model ${answer.model.name} v${answer.model.version}).`;
    } catch (err) {
      status.textContent = `The gateway could not score the series: ${err.message}.`;
    } finally {
      $("score").disabled = false;
    }
  }

  async function loadFile() {
    const file = $("series-file").files[0];
    if (!file) return;
    $("series-text").value = await file.text();
    await scoreSeries();
  }

  // ---- Live stream replay ----------------------------------------------------------------------------

  const REPLAY_APPENDS = 120; // a replay sends the series in about this many appends
  const JSON_HEADERS = { "Content-Type": "application/json" };

  /** The rows [start, stop) of the parsed series as an append body (`values` for one sensor, else `series`). */
  function appendBody(parsed, after, start, stop) {
    const names = Object.keys(parsed.columns);
    const body = { after, timestamps: parsed.timestamps.slice(start, stop) };
    if (names.length === 1) body.values = parsed.columns[names[0]].slice(start, stop);
    else body.series = Object.fromEntries(names.map((name) => [name, parsed.columns[name].slice(start, stop)]));
    return body;
  }

  /** Send the series to a new stream a few points at a time; redraw the chart as the scores come back. */
  async function replayStream() {
    const status = $("series-status");
    let parsed;
    try {
      parsed = parseSeriesText($("series-text").value, Number($("interval").value) || 300);
    } catch (err) {
      status.textContent = `Cannot replay: ${err.message}.`;
      return;
    }
    const options = {};
    const threshold = $("threshold").value.trim();
    const sensitivity = $("sensitivity").value.trim();
    if (threshold !== "") options.threshold = Number(threshold);
    else if (sensitivity !== "") options.sensitivity = Number(sensitivity);
    if ($("model").value) options.model = $("model").value;
    const total = parsed.timestamps.length;
    const step = Math.max(1, Math.ceil(total / REPLAY_APPENDS));
    const id = `web-replay-${Math.random().toString(36).slice(2, 10)}`;
    const path = `/v1/streams/${id}`;
    $("score").disabled = $("replay").disabled = true;
    try {
      const stream = await callApi(path, { method: "PUT", headers: JSON_HEADERS, body: JSON.stringify(options) });
      const points = [];
      const events = new Map();
      let after = null;
      for (let start = 0; start < total; start += step) {
        const stop = Math.min(total, start + step);
        const answer = await callApi(`${path}:append`, {
          method: "POST", headers: JSON_HEADERS, body: JSON.stringify(appendBody(parsed, after, start, stop)),
        });
        after = answer.end;
        points.push(...answer.points);
        answer.events.forEach((e) => events.set(e.start, e));
        const sent = Object.fromEntries(Object.entries(parsed.columns).map(([k, v]) => [k, v.slice(0, stop)]));
        const anomalies = [...events.values()];
        drawChart({ columns: sent }, { points, anomalies, threshold: stream.threshold });
        listSegments(anomalies);
        status.textContent = `Live stream: ${stop} of ${total} points sent, ${anomalies.length} ` +
          `event${anomalies.length === 1 ? "" : "s"} (model ${answer.model.name} v${answer.model.version}).`;
      }
      status.textContent = `Replayed ${total} points as a live stream: ${events.size} ` +
        `event${events.size === 1 ? "" : "s"}.`;
    } catch (err) {
      status.textContent = `The stream stopped: ${err.message}.`;
    } finally {
      callApi(path, { method: "DELETE" }).catch(() => {}); // an idle stream would expire anyway
      $("score").disabled = $("replay").disabled = false;
    }
  }

  // ---- Chart -----------------------------------------------------------------------------------------

  const CHART = { width: 960, height: 388, left: 64, right: 16, top: 16, seriesHeight: 230, gap: 28, scoreHeight: 90 };

  function svg(name, attributes = {}, parent = null) {
    const element = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
    if (parent) parent.appendChild(element);
    return element;
  }

  function extent(values) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (Number.isFinite(v)) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    if (lo === Infinity) return [0, 1];
    return lo === hi ? [lo - 1, hi + 1] : [lo, hi];
  }

  /** An SVG path through (x, y) pairs, broken where y is not a finite number. */
  function linePath(xs, ys) {
    let d = "";
    let pen = false;
    for (let i = 0; i < xs.length; i += 1) {
      if (Number.isFinite(ys[i]) && Number.isFinite(xs[i])) {
        d += `${pen ? "L" : "M"}${xs[i].toFixed(1)},${ys[i].toFixed(1)}`;
        pen = true;
      } else {
        pen = false;
      }
    }
    return d;
  }

  function label(parent, x, y, text, anchor = "end") {
    const element = svg("text", { x, y, "text-anchor": anchor, class: "axis-label" }, parent);
    element.textContent = text;
  }

  function drawChart(parsed, answer) {
    const c = CHART;
    const plotWidth = c.width - c.left - c.right;
    const scoreTop = c.top + c.seriesHeight + c.gap;
    const times = answer.points.map((p) => Date.parse(p.timestamp));
    const useTime = times.every(Number.isFinite) && times[times.length - 1] > times[0];
    const [t0, t1] = useTime ? [times[0], times[times.length - 1]] : [0, Math.max(1, times.length - 1)];
    const xOf = (t) => c.left + ((t - t0) / (t1 - t0)) * plotWidth;
    const xs = (useTime ? times : times.map((_, i) => i)).map(xOf);

    const root = svg("svg", {
      viewBox: `0 0 ${c.width} ${c.height}`, class: "chart-svg", role: "img",
      "aria-label": `Series of ${answer.points.length} points with ${answer.anomalies.length} events`,
    });
    svg("rect", { x: c.left, y: c.top, width: plotWidth, height: c.seriesHeight, class: "panel" }, root);
    svg("rect", { x: c.left, y: scoreTop, width: plotWidth, height: c.scoreHeight, class: "panel" }, root);

    for (const segment of answer.anomalies) {
      const start = useTime ? xOf(Date.parse(segment.start)) : xs[0];
      const end = useTime ? xOf(Date.parse(segment.end)) : xs[xs.length - 1];
      const band = svg("rect", {
        x: start - 1.5, y: c.top, width: Math.max(3, end - start + 3),
        height: scoreTop + c.scoreHeight - c.top, class: "anomaly-band",
      }, root);
      svg("title", {}, band).textContent = `Event ${segment.start} – ${segment.end}, peak ${formatScore(segment.peak_score)}`;
    }

    const allValues = Object.values(parsed.columns).flat();
    const [lo, hi] = extent(allValues);
    const yOf = (v) => c.top + c.seriesHeight - ((v - lo) / (hi - lo)) * c.seriesHeight;
    Object.entries(parsed.columns).forEach(([name, values], index) => {
      const path = svg("path", { d: linePath(xs, values.map(yOf)), class: `series-line series-${index % 4}` }, root);
      svg("title", {}, path).textContent = name;
    });
    label(root, c.left - 6, c.top + 10, hi.toPrecision(4));
    label(root, c.left - 6, c.top + c.seriesHeight, lo.toPrecision(4));

    // Surprise -log10(1 - score): scores crowd near 1, where the threshold sits; this axis spreads them out.
    const surprise = (s) => -Math.log10(Math.max(1 - s, 1e-9));
    const surprises = answer.points.map((p) => (p.score === null ? NaN : surprise(p.score)));
    const limit = surprise(answer.threshold);
    const top = Math.max(limit * 1.5, 1, ...surprises.filter(Number.isFinite));
    const scoreY = (v) => scoreTop + c.scoreHeight - (Math.min(v, top) / top) * c.scoreHeight;
    svg("line", {
      x1: c.left, x2: c.left + plotWidth, y1: scoreY(limit), y2: scoreY(limit), class: "threshold-line",
    }, root);
    svg("path", { d: linePath(xs, surprises.map(scoreY)), class: "score-line" }, root);
    label(root, c.left - 6, scoreTop + 10, top.toPrecision(2));
    label(root, c.left - 6, scoreY(limit) + 4, limit.toPrecision(2));
    label(root, c.left - 6, scoreTop + c.scoreHeight, "0");
    drawTimeTicks(root, useTime, t0, t1, xOf, answer.points);

    $("chart").replaceChildren(root);
  }

  /** Five labelled ticks under the score panel: dates (UTC) when timestamps parse, else point numbers. */
  function drawTimeTicks(root, useTime, t0, t1, xOf, points) {
    const c = CHART;
    const y = c.top + c.seriesHeight + c.gap + c.scoreHeight;
    for (let i = 0; i <= 4; i += 1) {
      const t = t0 + ((t1 - t0) * i) / 4;
      const x = xOf(t);
      svg("line", { x1: x, x2: x, y1: y, y2: y + 4, class: "tick" }, root);
      const text = useTime
        ? new Date(t).toISOString().slice(0, 16).replace("T", " ")
        : `point ${Math.round(t) + 1} of ${points.length}`;
      label(root, x, y + 16, text, i === 0 ? "start" : i === 4 ? "end" : "middle");
    }
  }

  function listSegments(anomalies) {
    const list = $("segments");
    list.replaceChildren();
    if (anomalies.length === 0) {
      const item = document.createElement("li");
      item.className = "no-segments";
      item.textContent = "No event.";
      list.appendChild(item);
      return;
    }
    for (const a of anomalies) {
      const item = document.createElement("li");
      item.className = "segment";
      item.textContent =
        `${a.start} to ${a.end}: ${a.points} point${a.points === 1 ? "" : "s"}, ` +
        `peak score ${formatScore(a.peak_score)} at ${a.peak_at}`;
      list.appendChild(item);
    }
  }

  // ---- Models ----------------------------------------------------------------------------------------

  /** Fill the model picker with the gateway's anomaly models (one per asset). */
  async function loadModels() {
    try {
      const answer = await callApi("/v1/models");
      const names = answer.models.filter((m) => m.role === "anomaly").map((m) => m.name);
      $("model").replaceChildren(...names.map((name) => {
        const option = document.createElement("option");
        option.value = name;
        option.textContent = name;
        return option;
      }));
    } catch (err) {
      // keep the default entry: scoring still works against the gateway's default model
    }
  }

  // ---- Service status --------------------------------------------------------------------------------

  async function checkService() {
    const status = $("service-status");
    try {
      await callApi("/readyz");
      status.textContent = "Service ready.";
      status.classList.add("ok");
    } catch (err) {
      const reason = err.message.length > 160 ? `${err.message.slice(0, 160)}…` : err.message;
      status.textContent = `Service not ready: ${reason}`;
      status.classList.add("bad");
    }
  }

  buildProbabilityRows();
  clearPad();
  $("series-form").addEventListener("submit", scoreSeries);
  $("series-file").addEventListener("change", loadFile);
  $("replay").addEventListener("click", replayStream);
  checkService();
  loadModels();
})();
