// Image Atlas map: every point of a large collection drawn with WebGL (one GL_POINTS draw of uint16 coordinates
// and uint8 label codes), inside a Streamlit component (components.v1 postMessage protocol, no library).
// Selections go back as a polygon in the map's normalised [0,1] coordinates (the server finds the points inside,
// on the same quantised coordinates drawn here), a clicked point as its row, a hovered point as its row (the
// server answers with its thumbnail). Nothing per point ever travels back.
"use strict";

const MARK_CODE = 63;  // colour slot of highlighted points (audit suspects)
const GRID = 512;      // hover index: GRID x GRID cells over [0,1]^2
const DENSITY_FROM = 150000;  // more points than this in view: a density image, fewer: round points

const $ = (id) => document.getElementById(id);
const glCanvas = $("gl"), density = $("density"), overlay = $("overlay"), tip = $("tip"), legend = $("legend"), statusEl = $("status");
const gl = glCanvas.getContext("webgl", {antialias: false, preserveDrawingBuffer: true, premultipliedAlpha: true});

const VS = `
attribute vec2 a_pos; attribute float a_code;
uniform vec2 u_center; uniform vec2 u_scale; uniform float u_size; uniform float u_alpha;
uniform vec4 u_colors[64];
varying vec4 v_color;
void main() {
  vec4 c = u_colors[int(a_code)];
  gl_Position = c.a == 0.0 ? vec4(2.0, 2.0, 2.0, 1.0) : vec4((a_pos - u_center) * u_scale, 0.0, 1.0);
  gl_PointSize = u_size;
  v_color = vec4(c.rgb, u_alpha);
}`;
const FS = `
precision mediump float;
varying vec4 v_color; uniform float u_round; uniform float u_ring;
void main() {
  if (u_round > 0.5) {
    vec2 d = gl_PointCoord - 0.5; float r = dot(d, d);
    if (r > 0.25 || (u_ring > 0.5 && r < 0.09)) discard;
  }
  gl_FragColor = v_color;
}`;

function shader(type, src) {
  const s = gl.createShader(type);
  gl.shaderSource(s, src); gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
  return s;
}
const prog = gl.createProgram();
gl.attachShader(prog, shader(gl.VERTEX_SHADER, VS)); gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FS));
gl.linkProgram(prog); gl.useProgram(prog);
const loc = {};
for (const u of ["u_center", "u_scale", "u_size", "u_alpha", "u_colors", "u_round", "u_ring"])
  loc[u] = gl.getUniformLocation(prog, u);
const aPos = gl.getAttribLocation(prog, "a_pos"), aCode = gl.getAttribLocation(prog, "a_code");
gl.enable(gl.BLEND);
// premultiplied "over" onto a transparent canvas: overlapping points build up colour (the density view)
gl.blendFuncSeparate(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA, gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
const bufs = {visPos: gl.createBuffer(), visCode: gl.createBuffer(), markPos: gl.createBuffer(), markCode: gl.createBuffer()};

const S = {
  version: null, n: 0, xy: null, codes: null, names: [], colors: [], marks: new Uint32Array(0),
  hidden: new Set(), marksHidden: false, markName: "",
  view: {cx: 0.5, cy: 0.5, k: 1}, W: 0, H: 0, mode: "lasso",
  selection: null, seq: 0, hover: null, hoverSent: null, hoverTimer: null,
  cellStart: null, cellItems: null, pending: false, drawMs: 0, firstDrawnAt: 0,
};

S.ctx2d = density.getContext("2d");

function send(type, data) { window.parent.postMessage(Object.assign({isStreamlitMessage: true, type}, data), "*"); }
function sendValue() {
  send("streamlit:setComponentValue", {value: {selection: S.selection, hover: S.hover}, dataType: "json"});
}

function hexColor(hex) {
  const h = String(hex || "#888888").replace("#", "");
  return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16) / 255);
}
function uploadColors() {
  const arr = new Float32Array(64 * 4);
  S.colors.forEach((c, i) => {
    const [r, g, b] = hexColor(c);
    arr.set([r, g, b, S.hidden.has(i) ? 0 : 1], i * 4);
  });
  const [r, g, b] = hexColor(S.markColor);
  arr.set([r, g, b, S.marksHidden ? 0 : 1], MARK_CODE * 4);
  gl.uniform4fv(loc.u_colors, arr);
}

function homeView() { S.view = {cx: 0.5, cy: 0.5, k: Math.min(S.W, S.H) * 0.96}; }
function toData(px, py) { const v = S.view; return [v.cx + (px - S.W / 2) / v.k, v.cy - (py - S.H / 2) / v.k]; }
function toScreen(x, y) { const v = S.view; return [(x - v.cx) * v.k + S.W / 2, S.H / 2 - (y - v.cy) * v.k]; }

function resize(height) {
  const W = Math.max(100, document.body.clientWidth), H = height;
  const dpr = window.devicePixelRatio || 1;
  if (S.W === W && S.H === H) return false;  // setting a canvas' size clears it: only on a change
  for (const c of [glCanvas, density, overlay]) {
    c.width = Math.round(W * dpr); c.height = Math.round(H * dpr); c.style.width = W + "px"; c.style.height = H + "px";
  }
  S.W = W; S.H = H;
  return true;
}

function setData(args) {
  const xyBytes = args.xy, n = xyBytes.length / 4;
  S.n = n;
  // a copy: the message's bytes may start at an odd offset inside a larger buffer
  S.xy = new Uint16Array(xyBytes.slice().buffer);
  S.codes = args.codes.slice();
  S.names = args.names; S.colors = args.colors; S.markColor = args.mark_color || "#d62728";
  S.markName = args.mark_name || "";
  S.marks = args.marks && args.marks.length ? new Uint32Array(args.marks.slice().buffer) : new Uint32Array(0);
  S.hidden = new Set(); S.marksHidden = false; S.selection = null;
  const m = S.marks.length, mpos = new Uint16Array(m * 2), mcode = new Uint8Array(m).fill(MARK_CODE);
  for (let i = 0; i < m; i++) { mpos[2 * i] = S.xy[2 * S.marks[i]]; mpos[2 * i + 1] = S.xy[2 * S.marks[i] + 1]; }
  gl.bindBuffer(gl.ARRAY_BUFFER, bufs.markPos); gl.bufferData(gl.ARRAY_BUFFER, mpos, gl.STATIC_DRAW);
  gl.bindBuffer(gl.ARRAY_BUFFER, bufs.markCode); gl.bufferData(gl.ARRAY_BUFFER, mcode, gl.STATIC_DRAW);
  buildIndex();
  buildLegend();
  uploadColors();
  homeView();
}

function buildIndex() {
  // counting sort of the points by grid cell: the hover looks at a few cells, not at a million points
  const n = S.n, cell = new Int32Array(n), start = new Int32Array(GRID * GRID + 1);
  for (let i = 0; i < n; i++) {
    const c = (S.xy[2 * i] >> 7) * GRID + (S.xy[2 * i + 1] >> 7);
    cell[i] = c; start[c + 1]++;
  }
  for (let c = 0; c < GRID * GRID; c++) start[c + 1] += start[c];
  const fill = start.slice(0, GRID * GRID), items = new Int32Array(n);
  for (let i = 0; i < n; i++) items[fill[cell[i]]++] = i;
  S.cellStart = start; S.cellItems = items;
}

function nearest(px, py, radius) {
  const [x, y] = toData(px, py), r = radius / S.view.k, q = 65535;
  const c0 = Math.max(0, Math.floor((x - r) * GRID)), c1 = Math.min(GRID - 1, Math.floor((x + r) * GRID));
  const d0 = Math.max(0, Math.floor((y - r) * GRID)), d1 = Math.min(GRID - 1, Math.floor((y + r) * GRID));
  let best = -1, bestD = r * r;
  for (let cx = c0; cx <= c1; cx++) for (let cy = d0; cy <= d1; cy++) {
    const c = cx * GRID + cy;
    for (let j = S.cellStart[c]; j < S.cellStart[c + 1]; j++) {
      const i = S.cellItems[j];
      if (S.hidden.has(S.codes[i])) continue;
      const dx = S.xy[2 * i] / q - x, dy = S.xy[2 * i + 1] / q - y, d = dx * dx + dy * dy;
      if (d < bestD) { bestD = d; best = i; }
    }
  }
  return best;
}

function pointStyle(visible) {
  // zoomed in: fewer points, drawn larger and more opaque
  const size = visible > 50000 ? 2 : visible > 10000 ? 3 : visible > 2000 ? 5 : 7;
  return {size, alpha: visible > 50000 ? 0.55 : visible > 10000 ? 0.7 : 0.85};
}

function bindPoints(pos, code) {
  gl.bindBuffer(gl.ARRAY_BUFFER, pos); gl.enableVertexAttribArray(aPos);
  gl.vertexAttribPointer(aPos, 2, gl.UNSIGNED_SHORT, true, 0, 0);
  gl.bindBuffer(gl.ARRAY_BUFFER, code); gl.enableVertexAttribArray(aCode);
  gl.vertexAttribPointer(aCode, 1, gl.UNSIGNED_BYTE, false, 0, 0);
}

function viewBounds() {
  // the view in quantised units (a point is drawn when inside, with a small margin for its size)
  const [x0, y1] = toData(-8, -8), [x1, y0] = toData(S.W + 8, S.H + 8), q = 65535;
  return [x0 * q, x1 * q, y0 * q, y1 * q];
}

function countVisible([x0, x1, y0, y1]) {
  const xy = S.xy, codes = S.codes, hidden = S.hidden.size ? S.hidden : null;
  let count = 0;
  for (let i = 0, n = S.n; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1];
    if (x >= x0 && x <= x1 && y >= y0 && y <= y1 && !(hidden && hidden.has(codes[i]))) count++;
  }
  return count;
}

function drawDensity(bounds) {
  // Many points in view: a density image rasterised here (a pass over the points on the CPU beats a software
  // GL drawing a million sprites). Each pixel: the mean colour of its points, opacity rising with their count.
  const dpr = window.devicePixelRatio || 1, W = density.width, H = density.height, v = S.view;
  if (!S.acc || S.acc.n.length !== W * H)
    S.acc = {n: new Uint32Array(W * H), r: new Float32Array(W * H), g: new Float32Array(W * H), b: new Float32Array(W * H)};
  const A = S.acc; A.n.fill(0); A.r.fill(0); A.g.fill(0); A.b.fill(0);
  const rgb = S.colors.map(hexColor), xy = S.xy, codes = S.codes, hidden = S.hidden.size ? S.hidden : null;
  const [x0, x1, y0, y1] = bounds, k = v.k * dpr / 65535, ox = W / 2 - v.cx * v.k * dpr, oy = H / 2 + v.cy * v.k * dpr;
  const splat = dpr < 1.5 ? 2 : 3;  // points of about 2 CSS pixels
  for (let i = 0, n = S.n; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1], c = codes[i];
    if (x < x0 || x > x1 || y < y0 || y > y1 || (hidden && hidden.has(c))) continue;
    const px = Math.floor(x * k + ox), py = Math.floor(oy - y * k), col = rgb[c];
    for (let dy = 0; dy < splat; dy++) {
      const yy = py + dy;
      if (yy < 0 || yy >= H) continue;
      for (let dx = 0; dx < splat; dx++) {
        const xx = px + dx;
        if (xx < 0 || xx >= W) continue;
        const j = yy * W + xx;
        A.n[j]++; A.r[j] += col[0]; A.g[j] += col[1]; A.b[j] += col[2];
      }
    }
  }
  let max = 1;
  for (let j = 0; j < W * H; j++) if (A.n[j] > max) max = A.n[j];
  const img = S.ctx2d.createImageData(W, H), d = img.data, logMax = Math.log1p(max);
  for (let j = 0; j < W * H; j++) {
    const m = A.n[j];
    if (!m) continue;
    d[4 * j] = 255 * A.r[j] / m; d[4 * j + 1] = 255 * A.g[j] / m; d[4 * j + 2] = 255 * A.b[j] / m;
    d[4 * j + 3] = 255 * Math.min(1, 0.35 + 0.65 * Math.log1p(m) / logMax);
  }
  S.ctx2d.putImageData(img, 0, 0);
}

function gatherVisible(bounds, count) {
  // Few enough points in view: just those go to the GPU, drawn as round points
  const [x0, x1, y0, y1] = bounds, xy = S.xy, codes = S.codes, hidden = S.hidden.size ? S.hidden : null;
  const pos = new Uint16Array(2 * count), code = new Uint8Array(count);
  let m = 0;
  for (let i = 0, n = S.n; i < n && m < count; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1], c = codes[i];
    if (x < x0 || x > x1 || y < y0 || y > y1 || (hidden && hidden.has(c))) continue;
    pos[2 * m] = x; pos[2 * m + 1] = y; code[m] = c; m++;
  }
  gl.bindBuffer(gl.ARRAY_BUFFER, bufs.visPos); gl.bufferData(gl.ARRAY_BUFFER, pos, gl.DYNAMIC_DRAW);
  gl.bindBuffer(gl.ARRAY_BUFFER, bufs.visCode); gl.bufferData(gl.ARRAY_BUFFER, code, gl.DYNAMIC_DRAW);
  return m;
}

function draw() {
  const t0 = performance.now(), dpr = window.devicePixelRatio || 1, v = S.view;
  gl.viewport(0, 0, glCanvas.width, glCanvas.height);
  gl.clearColor(0, 0, 0, 0); gl.clear(gl.COLOR_BUFFER_BIT);
  gl.uniform2f(loc.u_center, v.cx, v.cy);
  gl.uniform2f(loc.u_scale, 2 * v.k / S.W, 2 * v.k / S.H);
  const bounds = viewBounds(), visible = countVisible(bounds), st = pointStyle(visible);
  S.ctx2d.clearRect(0, 0, density.width, density.height);
  S.drawnAs = visible > DENSITY_FROM ? "density" : "points";
  if (S.drawnAs === "density") drawDensity(bounds);
  else if (visible) {
    const m = gatherVisible(bounds, visible);
    gl.uniform1f(loc.u_size, st.size * dpr); gl.uniform1f(loc.u_alpha, st.alpha);
    gl.uniform1f(loc.u_round, st.size >= 3 ? 1 : 0); gl.uniform1f(loc.u_ring, 0);
    bindPoints(bufs.visPos, bufs.visCode);
    gl.drawArrays(gl.POINTS, 0, m);
  }
  if (S.marks.length && !S.marksHidden) {
    gl.uniform1f(loc.u_size, (st.size + 8) * dpr); gl.uniform1f(loc.u_alpha, 1);
    gl.uniform1f(loc.u_round, 1); gl.uniform1f(loc.u_ring, 1);
    bindPoints(bufs.markPos, bufs.markCode);
    gl.drawArrays(gl.POINTS, 0, S.marks.length);
  }
  const px = new Uint8Array(4);
  gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);  // waits for the draw: the time is the real one
  S.drawMs = performance.now() - t0;
  S.visible = visible;
  drawOverlay();
}

function schedule() {
  if (S.pending) return;
  S.pending = true;
  requestAnimationFrame(() => { S.pending = false; draw(); });
}

function drawOverlay(live) {
  const ctx = overlay.getContext("2d"), dpr = window.devicePixelRatio || 1;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, S.W, S.H);
  ctx.strokeStyle = "#222"; ctx.lineWidth = 1.5; ctx.setLineDash([5, 4]);
  const poly = live || (S.selection && S.selection.polygon);
  if (poly && poly.length > 1) {
    ctx.beginPath();
    poly.forEach(([x, y], i) => { const [sx, sy] = live ? [x, y] : toScreen(x, y); i ? ctx.lineTo(sx, sy) : ctx.moveTo(sx, sy); });
    ctx.closePath(); ctx.stroke();
    ctx.fillStyle = "rgba(74,123,208,0.08)"; ctx.fill();
  }
  if (S.selection && S.selection.kind === "point") {
    const i = S.selection.row, [sx, sy] = toScreen(S.xy[2 * i] / 65535, S.xy[2 * i + 1] / 65535);
    ctx.setLineDash([]); ctx.beginPath(); ctx.arc(sx, sy, 7, 0, 2 * Math.PI); ctx.stroke();
  }
}

function buildLegend() {
  legend.innerHTML = "";
  const entry = (name, color, off, toggle) => {
    const d = document.createElement("div"), dot = document.createElement("span");
    dot.className = "dot"; dot.style.background = color;
    d.appendChild(dot); d.appendChild(document.createTextNode(name));  // text, never HTML: names are user data
    d.className = off ? "off" : "";
    d.title = "Click: hide or show. Double-click: only this one.";
    d.onclick = () => { toggle(); d.className = d.className ? "" : "off"; uploadColors(); schedule(); };
    legend.appendChild(d);
    return d;
  };
  const items = S.names.map((name, i) => entry(name, S.colors[i], false, () => {
    S.hidden.has(i) ? S.hidden.delete(i) : S.hidden.add(i);
  }));
  items.forEach((d, i) => {
    d.ondblclick = () => {
      S.hidden = new Set(S.names.map((_, j) => j).filter((j) => j !== i));
      items.forEach((e, j) => { e.className = j === i ? "" : "off"; });
      uploadColors(); schedule();
    };
  });
  if (S.marks.length) entry(S.markName, S.markColor, false, () => { S.marksHidden = !S.marksHidden; });
}

function setMode(mode) {
  S.mode = mode;
  document.querySelectorAll("#tools button[data-mode]").forEach((b) => b.classList.toggle("on", b.dataset.mode === mode));
  glCanvas.style.cursor = mode === "pan" ? "grab" : "crosshair";
}

function finishSelection(kind, polygon, row) {
  S.seq += 1;
  const round = (v) => Math.round(v * 1e6) / 1e6;
  S.selection = {kind, seq: S.seq, hidden: [...S.hidden], marks_hidden: S.marksHidden};
  if (polygon) S.selection.polygon = polygon.map(([x, y]) => [round(x), round(y)]);
  if (row !== undefined) S.selection.row = row;
  S.selectedAt = Date.now();
  drawOverlay(); sendValue();
}

// ---- pointer interaction ----
let drag = null;
function pos(e) { const r = glCanvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; }
glCanvas.addEventListener("pointerdown", (e) => {
  glCanvas.setPointerCapture(e.pointerId);
  const [px, py] = pos(e);
  drag = {x: px, y: py, moved: false, path: [[px, py]], view: Object.assign({}, S.view)};
  hideTip();
});
glCanvas.addEventListener("pointermove", (e) => {
  const [px, py] = pos(e);
  if (!drag) { hoverAt(px, py); return; }
  if (Math.abs(px - drag.x) + Math.abs(py - drag.y) > 3) drag.moved = true;
  if (S.mode === "pan") {
    S.view.cx = drag.view.cx - (px - drag.x) / S.view.k; S.view.cy = drag.view.cy + (py - drag.y) / S.view.k;
    schedule();
  } else if (S.mode === "lasso") {
    const [lx, ly] = drag.path[drag.path.length - 1];
    if (Math.abs(px - lx) + Math.abs(py - ly) > 2) drag.path.push([px, py]);
    drawOverlay(drag.path);
  } else {
    drag.path = [[drag.x, drag.y], [px, drag.y], [px, py], [drag.x, py]];
    drawOverlay(drag.path);
  }
});
glCanvas.addEventListener("pointerup", (e) => {
  const [px, py] = pos(e), d = drag;
  drag = null;
  if (!d) return;
  if (!d.moved) {
    const i = nearest(px, py, 10);
    if (i >= 0) finishSelection("point", null, i);
    return;
  }
  if (S.mode === "pan") return;
  if (S.mode === "box") d.path = [[d.x, d.y], [px, d.y], [px, py], [d.x, py]];
  if (d.path.length >= 3) finishSelection(S.mode, d.path.map(([x, y]) => toData(x, y)));
  else drawOverlay();
});
glCanvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const [px, py] = pos(e);
  zoomAt(px, py, Math.exp(-e.deltaY * 0.0015));
}, {passive: false});
glCanvas.addEventListener("dblclick", () => { homeView(); schedule(); });
glCanvas.addEventListener("pointerleave", () => { if (!drag) hideTip(); });

function zoomAt(px, py, f) {
  const [x, y] = toData(px, py);
  S.view.k = Math.max(Math.min(S.W, S.H) * 0.2, Math.min(S.view.k * f, Math.min(S.W, S.H) * 5000));
  S.view.cx = x - (px - S.W / 2) / S.view.k; S.view.cy = y + (py - S.H / 2) / S.view.k;
  schedule();
}

// ---- hover: label at once, the image from the server once the pointer rests ----
function hideTip() { tip.style.display = "none"; S.hoverRow = -1; }
function hoverAt(px, py) {
  const i = nearest(px, py, 8);
  if (i < 0) { hideTip(); return; }
  if (i !== S.hoverRow) {
    S.hoverRow = i;
    tip.textContent = S.names[S.codes[i]] + " · point " + (i + 1).toLocaleString();
    clearTimeout(S.hoverTimer);
    S.hoverTimer = setTimeout(() => { if (S.hoverRow === i && S.hover !== i) { S.hover = i; sendValue(); } }, 350);
    showHoverImage();
  }
  tip.style.display = "block";
  tip.style.left = Math.min(px + 12, S.W - 230) + "px"; tip.style.top = Math.min(py + 12, S.H - 160) + "px";
}
function showHoverImage() {
  const a = S.args || {};
  if (a.hover_row === S.hoverRow && a.hover_image) {
    tip.textContent = a.hover_text || "";
    const img = document.createElement("img"); img.src = a.hover_image; tip.appendChild(img);
  }
}

document.querySelectorAll("#tools button[data-mode]").forEach((b) => { b.onclick = () => setMode(b.dataset.mode); });
$("reset").onclick = () => { homeView(); schedule(); };
$("clear").onclick = () => { S.selection = null; drawOverlay(); S.seq += 1; sendValue(); };
setMode("lasso");

// ---- Streamlit protocol ----
window.addEventListener("message", (ev) => {
  const m = ev.data;
  if (!m || m.type !== "streamlit:render") return;
  const args = m.args, received = Date.now();
  S.args = args;
  const height = args.height || 650;
  const resized = resize(height);
  if (args.version !== S.version) {
    S.version = args.version;
    setData(args);
    draw();
    S.firstDrawnAt = Date.now();
    S.firstDrawMs = S.firstDrawnAt - received;
    statusEl.textContent = S.n.toLocaleString() + " points";
    document.body.dataset.drawn = args.version;
  } else if (resized) {
    homeView(); draw();
  }
  if (args.hover_row === S.hoverRow) showHoverImage();
  send("streamlit:setFrameHeight", {height: height});
});
window.addEventListener("resize", () => { if (S.n && resize(S.H)) { homeView(); draw(); } });
send("streamlit:componentReady", {apiVersion: 1});

// for benchmarks and tests: timings and the view's mapping
window.atlasMap = {
  state: S, toScreen, toData, draw, zoomAt, home() { homeView(); draw(); },
  zoomRedrawMs(f) { const t0 = performance.now(); zoomAt(S.W / 2, S.H / 2, f); draw(); return performance.now() - t0; },
};
