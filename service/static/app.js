// Restauro's restoration page. Plain JavaScript, no build step: it talks to the public API
// (/v1/...) like any other client, sending X-API-Key when one is entered.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "restauro.apiKey";
const POLL_MS = 600;
const UNDO_DEPTH = 12;

const state = {
  file: null, // the scan as chosen (sent as it is: the server decodes it)
  width: 0,
  height: 0,
  alphaMask: null, // Uint8Array, 1 = transparent in the scan, or null
  tool: "brush",
  size: 24,
  drawing: false,
  last: null,
  undo: [],
  jobId: null,
  poll: null,
  view: null,
  urls: { original: null, mask: null, candidates: [] },
  selected: 1,
};

// --- talking to the API ---------------------------------------------------------------------
function apiKey() {
  return $("api-key").value.trim();
}

function headers() {
  const key = apiKey();
  return key ? { "X-API-Key": key } : {};
}

/** fetch() that turns every failure into an Error with a sentence a person can act on. */
async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  } catch (err) {
    throw new Error(`Cannot reach the Restauro server (${err.message}). Is it running?`);
  }
  if (response.ok) return response;
  let code = "http_error";
  let detail = response.statusText || "request failed";
  try {
    const body = await response.json();
    code = body.error || code;
    detail = body.detail || detail;
  } catch (_) { /* not JSON: keep the status text */ }
  let hint = "";
  if (response.status === 401) hint = " Enter a valid API key at the top right.";
  if (response.status === 413) hint = " The scan is larger than this server accepts.";
  const error = new Error(`${detail}${hint}`);
  error.code = code;
  error.status = response.status;
  throw error;
}

async function apiJSON(path, options) {
  return (await api(path, options)).json();
}

async function blobURL(path) {
  const blob = await (await api(path)).blob();
  return URL.createObjectURL(blob);
}

function showError(message) {
  $("error-text").textContent = message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

async function guarded(fn) {
  try {
    clearError();
    await fn();
  } catch (err) {
    showError(err.message || String(err));
  }
}

// --- models: which networks may restore the painting ----------------------------------------
async function loadModels() {
  const info = $("bundle-info");
  const targets = $("targets");
  targets.querySelectorAll(".target.model").forEach((el) => el.remove());
  try {
    const models = await apiJSON("/v1/models");
    const k = models.clusters.length;
    info.textContent = `bundle ${models.version} · ${models.features.kind} · ${k} clusters`;
    for (const c of models.clusters) {
      targets.append(targetCard(`cluster:${c.id}`, `Cluster ${c.id}`, `${c.size} paintings`, c.thumbnail));
    }
    targets.append(targetCard("general", "General", "one DCGAN for all (baseline)", models.general.thumbnail));
  } catch (err) {
    info.textContent = "models unavailable";
    showError(`Could not load the models: ${err.message}`);
  }
}

function targetCard(value, name, note, thumbnail) {
  const label = document.createElement("label");
  label.className = "target model";
  label.innerHTML = `<input type="radio" name="target"><span class="name"></span><span class="muted"></span>`;
  label.querySelector("input").value = value;
  label.querySelector(".name").textContent = name;
  label.querySelector(".muted").textContent = note;
  if (thumbnail) {
    const img = document.createElement("img");
    img.alt = `samples of ${name}`;
    label.append(img);
    blobURL(thumbnail).then((url) => { img.src = url; }, () => img.remove());
  }
  return label;
}

// --- the scan and its mask ------------------------------------------------------------------
const scanCanvas = () => $("scan-canvas");
const maskCanvas = () => $("mask-canvas");

/** The file's pixels exactly as stored (no premultiplied alpha, no colour conversion). */
async function openBitmap(file, message) {
  try {
    return await createImageBitmap(file, { premultiplyAlpha: "none", colorSpaceConversion: "none" });
  } catch (_) {
    throw new Error(message);
  }
}

async function openScan(file) {
  if (!file) return;
  const bitmap = await openBitmap(file,
    `The browser cannot display ${file.name}. Open a PNG, JPEG or WebP here ` +
    "(TIFF scans are accepted by the API and the CLI, not by browsers).");
  state.file = file;
  state.width = bitmap.width;
  state.height = bitmap.height;
  for (const canvas of [scanCanvas(), maskCanvas()]) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  const ctx = scanCanvas().getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const pixels = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  let transparent = 0;
  const alpha = new Uint8Array(bitmap.width * bitmap.height);
  for (let i = 0, p = 3; i < alpha.length; i++, p += 4) {
    if (pixels[p] < 255) { alpha[i] = 1; transparent++; }
  }
  state.alphaMask = transparent ? alpha : null;
  state.undo = [];
  maskContext().clearRect(0, 0, state.width, state.height);
  $("drop-hint").hidden = true;
  $("canvas-wrap").hidden = false;
  $("mask-file").disabled = false;
  $("use-alpha").disabled = !state.alphaMask;
  $("scan-info").textContent = `${file.name} · ${bitmap.width} × ${bitmap.height} px`;
  if (state.alphaMask) useAlpha();
  fitStages();
  maskChanged();
  resetResults();
}

function maskContext() {
  return maskCanvas().getContext("2d", { willReadFrequently: true });
}

function pushUndo() {
  state.undo.push(maskContext().getImageData(0, 0, state.width, state.height));
  if (state.undo.length > UNDO_DEPTH) state.undo.shift();
}

function paintFrom(binary) {
  // binary: Uint8Array of width*height, nonzero = damage. Drawn opaque red on the mask layer.
  pushUndo();
  const ctx = maskContext();
  const image = ctx.getImageData(0, 0, state.width, state.height);
  const d = image.data;
  for (let i = 0, p = 0; i < binary.length; i++, p += 4) {
    if (binary[i]) { d[p] = 230; d[p + 1] = 40; d[p + 2] = 60; d[p + 3] = 255; }
  }
  ctx.putImageData(image, 0, 0);
  maskChanged();
}

function useAlpha() {
  if (state.alphaMask) paintFrom(state.alphaMask);
}

async function loadMaskFile(file) {
  if (!file) return;
  const bitmap = await openBitmap(file, `The browser cannot open the mask ${file.name}.`);
  if (bitmap.width !== state.width || bitmap.height !== state.height) {
    throw new Error(
      `The mask is ${bitmap.width} × ${bitmap.height} px but the scan is ` +
      `${state.width} × ${state.height} px: they must match.`);
  }
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const d = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const binary = new Uint8Array(bitmap.width * bitmap.height);
  for (let i = 0, p = 0; i < binary.length; i++, p += 4) {
    binary[i] = d[p] || d[p + 1] || d[p + 2] ? 1 : 0; // nonzero = missing, as the API reads it
  }
  paintFrom(binary);
}

function maskPixelCount() {
  if (!state.width) return 0;
  const d = maskContext().getImageData(0, 0, state.width, state.height).data;
  let n = 0;
  for (let p = 3; p < d.length; p += 4) if (d[p]) n++;
  return n;
}

function maskChanged() {
  const n = maskPixelCount();
  const total = state.width * state.height || 1;
  $("mask-info").textContent = n
    ? `damage: ${n.toLocaleString()} px (${((100 * n) / total).toFixed(1)} %)`
    : "paint over the damaged areas";
  $("undo").disabled = state.undo.length === 0;
  $("clear-mask").disabled = n === 0;
  const ready = state.file && n > 0 && n < total;
  $("submit").disabled = !ready;
  $("submit-hint").textContent = !state.file
    ? "Open a scan and paint the damage first."
    : n === 0 ? "Paint the damage (or load a mask) first."
    : n >= total ? "The mask covers the whole scan: leave some of the painting visible."
    : "Ready.";
}

/** The mask as the API wants it: a PNG, white = missing, black elsewhere. */
function maskBlob() {
  const src = maskContext().getImageData(0, 0, state.width, state.height).data;
  const canvas = document.createElement("canvas");
  canvas.width = state.width;
  canvas.height = state.height;
  const ctx = canvas.getContext("2d");
  const out = ctx.createImageData(state.width, state.height);
  for (let p = 0; p < src.length; p += 4) {
    const v = src[p + 3] ? 255 : 0; // any coverage counts as damage (brush edges included)
    out.data[p] = out.data[p + 1] = out.data[p + 2] = v;
    out.data[p + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// --- the brush -----------------------------------------------------------------------------
function toImage(event) {
  const rect = maskCanvas().getBoundingClientRect();
  return {
    x: ((event.clientX - rect.left) * state.width) / rect.width,
    y: ((event.clientY - rect.top) * state.height) / rect.height,
    scale: rect.width / state.width,
  };
}

function stroke(from, to) {
  const ctx = maskContext();
  ctx.globalCompositeOperation = state.tool === "eraser" ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = "rgb(230, 40, 60)";
  ctx.lineWidth = state.size;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
  ctx.beginPath();
  ctx.arc(to.x, to.y, state.size / 2, 0, 2 * Math.PI);
  ctx.fill();
  ctx.globalCompositeOperation = "source-over";
}

function moveCursor(event) {
  const cursor = $("brush-cursor");
  const p = toImage(event);
  const rect = maskCanvas().getBoundingClientRect();
  const wrap = $("canvas-wrap").getBoundingClientRect();
  const d = state.size * p.scale;
  cursor.hidden = false;
  cursor.style.width = cursor.style.height = `${d}px`;
  cursor.style.left = `${event.clientX - wrap.left}px`;
  cursor.style.top = `${event.clientY - wrap.top}px`;
  cursor.style.borderStyle = state.tool === "eraser" ? "dashed" : "solid";
  void rect;
}

function installBrush() {
  const canvas = maskCanvas();
  canvas.addEventListener("pointerdown", (e) => {
    if (!state.file || e.button !== 0) return;
    canvas.setPointerCapture(e.pointerId);
    pushUndo();
    state.drawing = true;
    state.last = toImage(e);
    stroke(state.last, state.last);
  });
  canvas.addEventListener("pointermove", (e) => {
    moveCursor(e);
    if (!state.drawing) return;
    const p = toImage(e);
    stroke(state.last, p);
    state.last = p;
  });
  const end = () => {
    if (!state.drawing) return;
    state.drawing = false;
    maskChanged();
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("pointerleave", () => { $("brush-cursor").hidden = true; });
}

function setTool(tool) {
  state.tool = tool;
  for (const [id, name] of [["tool-brush", "brush"], ["tool-eraser", "eraser"]]) {
    $(id).classList.toggle("on", tool === name);
    $(id).setAttribute("aria-pressed", String(tool === name));
  }
}

function setZoom(stageId, fitId, fullId, full) {
  const stage = $(stageId);
  stage.classList.toggle("fit", !full);
  stage.classList.toggle("full", full);
  $(fitId).classList.toggle("on", !full);
  $(fullId).classList.toggle("on", full);
  fitStages();
}

/** Display size of a w x h image in a stage: every pixel at "100%", else the largest size that
 *  fits the panel (up or down: a small scan is enlarged, a large one reduced). */
function displaySize(stage, w, h, across = 1) {
  if (stage.classList.contains("full") || !w) return [w, h];
  const gap = 8 * (across - 1);
  const width = (stage.clientWidth - 2 - gap) / across;
  const height = Math.max(240, window.innerHeight * 0.68);
  const scale = Math.min(width / w, height / h);
  return [Math.floor(w * scale), Math.floor(h * scale)];
}

function fitStages() {
  if (state.width) {
    const [w, h] = displaySize($("editor"), state.width, state.height);
    scanCanvas().style.width = `${w}px`;
    scanCanvas().style.height = `${h}px`;
  }
  const original = $("compare-original");
  if (original.naturalWidth) {
    const across = $("compare").classList.contains("side") ? 2 : 1;
    const [w, h] = displaySize($("compare"), original.naturalWidth, original.naturalHeight, across);
    for (const img of [original, $("compare-restored")]) {
      img.style.width = `${w}px`;
      img.style.height = `${h}px`;
    }
  }
}

// --- submitting and following the job -------------------------------------------------------
function chosenTarget() {
  const input = document.querySelector('input[name="target"]:checked');
  return input ? input.value : "auto";
}

async function submit() {
  const form = new FormData();
  form.append("image", state.file, state.file.name);
  form.append("mask", await maskBlob(), "mask.png");
  const target = chosenTarget();
  if (target === "general") form.append("general", "true");
  else if (target.startsWith("cluster:")) form.append("cluster", target.split(":")[1]);
  for (const name of ["candidates", "steps", "seed"]) {
    const value = $(name).value.trim();
    if (value) form.append(name, value);
  }
  resetResults();
  $("submit").disabled = true;
  $("job").hidden = false;
  setJobStatus("uploading", "sending the scan and routing it…", 0, 1);
  try {
    const accepted = await apiJSON("/v1/restorations", { method: "POST", body: form });
    state.jobId = accepted.id;
    const where = accepted.cluster === null ? "the general DCGAN" : `cluster ${accepted.cluster}`;
    const how = accepted.route ? "routed to" : "sent to";
    setJobStatus("queued", `${how} ${where}; waiting for a worker (${accepted.queue})`, 0, 1);
    schedulePoll();
  } catch (err) {
    $("job").hidden = true;
    maskChanged();
    throw err;
  }
}

function setJobStatus(status, detail, done, total) {
  $("job-status").textContent = status;
  $("job-status").dataset.status = status;
  $("job-detail").textContent = detail || "";
  $("job-progress").max = total || 1;
  $("job-progress").value = done || 0;
}

function schedulePoll() {
  clearTimeout(state.poll);
  state.poll = setTimeout(() => guarded(poll), POLL_MS);
}

async function poll() {
  const id = state.jobId;
  if (!id) return;
  let view;
  try {
    view = await apiJSON(`/v1/restorations/${id}`);
  } catch (err) {
    schedulePoll(); // a dropped poll is not the job failing: keep following it
    throw err;
  }
  if (id !== state.jobId) return;
  if (view.status === "queued") {
    setJobStatus("queued", `waiting for a worker (${view.queue})`, 0, 1);
    schedulePoll();
  } else if (view.status === "running") {
    const p = view.progress;
    const detail = p ? `${p.stage} ${p.done} / ${p.total}` : "starting";
    setJobStatus("running", `restoring with ${view.target}: ${detail}`, p ? p.done : 0, p ? p.total : 1);
    schedulePoll();
  } else if (view.status === "failed") {
    setJobStatus("failed", "", 0, 1);
    maskChanged();
    const e = view.error || {};
    throw new Error(`The restoration failed: ${e.detail || e.error || "unknown error"}`);
  } else if (view.status === "succeeded") {
    const t = view.timings || {};
    setJobStatus("succeeded", `${view.candidates.length} proposals by ${view.target} in ` +
      `${(t.restoration_seconds ?? 0).toFixed(1)} s`, 1, 1);
    maskChanged();
    await showResults(view);
  }
}

// --- comparing and downloading --------------------------------------------------------------
function resetResults() {
  clearTimeout(state.poll);
  state.jobId = null;
  state.view = null;
  for (const url of [state.urls.original, state.urls.mask, ...state.urls.candidates]) {
    if (url) URL.revokeObjectURL(url);
  }
  state.urls = { original: null, mask: null, candidates: [] };
  $("step-results").hidden = true;
  $("candidates-list").replaceChildren();
}

async function showResults(view) {
  state.view = view;
  state.urls.original = await blobURL(view.links.original);
  state.urls.candidates = await Promise.all(view.candidates.map((c) => blobURL(c.url)));
  const list = $("candidates-list");
  list.replaceChildren();
  view.candidates.forEach((c, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "candidate";
    button.dataset.rank = c.rank;
    button.innerHTML = `<img alt=""><span></span>`;
    button.querySelector("img").src = state.urls.candidates[i];
    button.querySelector("img").alt = `proposal ${c.rank}`;
    button.querySelector("span").textContent = candidateLabel(c);
    button.title = JSON.stringify(c, null, 1);
    button.addEventListener("click", () => select(c.rank));
    list.append(button);
  });
  $("compare-original").onload = fitStages;
  $("compare-original").src = state.urls.original;
  const route = view.route ? ` Routed to cluster ${view.route.cluster} (nearest of ` +
    `${Object.keys(view.route.distances).length}).` : "";
  const warnings = (view.warnings || []).length ? ` Warnings: ${view.warnings.join("; ")}` : "";
  $("result-info").textContent = `Bundle ${view.bundle_version}, ${view.target}, seed ` +
    `${view.params.seed}.${route} Proposals are ranked best first` +
    `${view.score_kind ? ` (by ${view.score_kind})` : ""}.${warnings}`;
  $("step-results").hidden = false;
  select(1);
  $("step-results").scrollIntoView({ behavior: "smooth", block: "start" });
}

/** "#1 · gan:c0 · 0.031": rank, how it was made (result.json "method"), its ranking score. */
function candidateLabel(c) {
  const score = c.score ?? c.loss;
  const parts = [`#${c.rank}`];
  if (c.method) parts.push(c.method);
  if (typeof score === "number") parts.push(score.toFixed(3));
  return parts.join(" · ");
}

function select(rank) {
  state.selected = rank;
  $("compare-restored").src = state.urls.candidates[rank - 1];
  const c = state.view.candidates[rank - 1];
  $("restored-caption").textContent = `proposal #${rank}${c.method ? ` (${c.method})` : ""}`;
  document.querySelectorAll(".candidate").forEach((b) => {
    b.classList.toggle("on", Number(b.dataset.rank) === rank);
  });
  $("download-candidate").textContent = `Download proposal #${rank}`;
}

function setCompareMode(mode) {
  const compare = $("compare");
  for (const m of ["slider", "toggle", "side"]) {
    compare.classList.toggle(m, m === mode);
    $(`mode-${m}`).classList.toggle("on", m === mode);
  }
  compare.classList.remove("show-original");
  $("show-original").hidden = mode !== "toggle";
  $("show-original").textContent = "Showing: proposal";
  fitStages();
}

function setCut(percent) {
  $("compare").style.setProperty("--cut", `${percent}%`);
  $("compare-position").value = percent;
}

function installCompare() {
  $("compare-position").addEventListener("input", (e) => setCut(e.target.value));
  const inner = $("compare-inner");
  const follow = (e) => {
    if (!$("compare").classList.contains("slider") || !(e.buttons & 1)) return;
    const rect = inner.getBoundingClientRect();
    setCut(Math.max(0, Math.min(100, (100 * (e.clientX - rect.left)) / rect.width)).toFixed(1));
  };
  inner.addEventListener("pointerdown", follow);
  inner.addEventListener("pointermove", follow);
  $("show-original").addEventListener("click", () => {
    const on = $("compare").classList.toggle("show-original");
    $("show-original").textContent = on ? "Showing: original" : "Showing: proposal";
  });
}

async function download(path, name) {
  const url = await blobURL(path);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// --- wiring ---------------------------------------------------------------------------------
function init() {
  const key = $("api-key");
  key.value = localStorage.getItem(KEY_STORAGE) || "";
  key.addEventListener("change", () => {
    localStorage.setItem(KEY_STORAGE, key.value.trim());
    guarded(loadModels);
  });
  $("error-close").addEventListener("click", clearError);
  $("scan-file").addEventListener("change", (e) => guarded(() => openScan(e.target.files[0])));
  $("mask-file").addEventListener("change", (e) => guarded(() => loadMaskFile(e.target.files[0])));
  $("use-alpha").addEventListener("click", useAlpha);
  $("tool-brush").addEventListener("click", () => setTool("brush"));
  $("tool-eraser").addEventListener("click", () => setTool("eraser"));
  $("brush-size").addEventListener("input", (e) => {
    state.size = Number(e.target.value);
    $("brush-size-value").textContent = `${state.size} px`;
  });
  $("undo").addEventListener("click", () => {
    const last = state.undo.pop();
    if (last) maskContext().putImageData(last, 0, 0);
    maskChanged();
  });
  $("clear-mask").addEventListener("click", () => {
    pushUndo();
    maskContext().clearRect(0, 0, state.width, state.height);
    maskChanged();
  });
  $("show-mask").addEventListener("change", (e) => {
    maskCanvas().classList.toggle("hidden-mask", !e.target.checked);
  });
  $("editor-fit").addEventListener("click", () => setZoom("editor", "editor-fit", "editor-full", false));
  $("editor-full").addEventListener("click", () => setZoom("editor", "editor-fit", "editor-full", true));
  $("compare-fit").addEventListener("click", () => setZoom("compare", "compare-fit", "compare-full", false));
  $("compare-full").addEventListener("click", () => setZoom("compare", "compare-fit", "compare-full", true));
  for (const mode of ["slider", "toggle", "side"]) {
    $(`mode-${mode}`).addEventListener("click", () => setCompareMode(mode));
  }
  $("submit").addEventListener("click", () => guarded(submit));
  $("download-candidate").addEventListener("click", () => guarded(() => download(
    state.view.candidates[state.selected - 1].url,
    `restored-${state.view.id.slice(0, 8)}-${state.selected}.png`)));
  $("download-mask").addEventListener("click", () => guarded(() => download(
    state.view.links.mask, `mask-${state.view.id.slice(0, 8)}.png`)));
  $("download-result").addEventListener("click", () => guarded(() => download(
    state.view.links.result, `result-${state.view.id.slice(0, 8)}.json`)));

  const editor = $("editor");
  editor.addEventListener("dragover", (e) => { e.preventDefault(); editor.classList.add("drag"); });
  editor.addEventListener("dragleave", () => editor.classList.remove("drag"));
  editor.addEventListener("drop", (e) => {
    e.preventDefault();
    editor.classList.remove("drag");
    guarded(() => openScan(e.dataTransfer.files[0]));
  });
  window.addEventListener("resize", fitStages);
  installBrush();
  installCompare();
  setCut(50);
  maskChanged();
  guarded(loadModels);
}

document.addEventListener("DOMContentLoaded", init);
