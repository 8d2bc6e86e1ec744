"use strict";
// The studio page: paint on the embedded face or a frame, preview, render. Every request
// carries the token of the address the studio printed.
const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const picture = $("picture"), paint = $("paint"), stroke = $("stroke"), decal = $("decal"), guide = $("guide");
const paintContext = paint.getContext("2d"), strokeContext = stroke.getContext("2d"), decalContext = decal.getContext("2d");
let frame = null;  // null: the embedded face; else the frame painted on
let undoStack = [], redoStack = [], drawing = null, saving = Promise.resolve();
let decalImage = null, decalAt = { x: 0, y: 0 }, dragging = null;

function url(path, query = {}) {
  const params = new URLSearchParams({ ...query, token });
  return `${path}?${params}`;
}

async function api(path, { query = {}, method = "GET", body } = {}) {
  const answer = await fetch(url(path, query), { method, body, headers: { "X-Studio-Token": token } });
  const text = await answer.text();
  const record = text ? JSON.parse(text) : {};
  if (!answer.ok) throw new Error(record.error || answer.statusText);
  return record;
}

function say(message) { $("status").textContent = message; }

function canvasQuery() { return { frame: frame === null ? "face" : String(frame) }; }

function loadImage(source) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not load ${source}`));
    image.src = source;
  });
}

async function loadCanvas() {
  say("loading…");
  const stamp = Date.now();
  const shown = await loadImage(url("/api/canvas", { ...canvasQuery(), t: stamp }));
  picture.src = shown.src;
  for (const layer of [paint, stroke, decal]) { layer.width = shown.naturalWidth; layer.height = shown.naturalHeight; }
  const layer = await loadImage(url("/api/layer", { ...canvasQuery(), t: stamp }));
  paintContext.clearRect(0, 0, paint.width, paint.height);
  paintContext.drawImage(layer, 0, 0);
  undoStack = []; redoStack = [];
  guide.src = url("/api/guide", { t: stamp });
  guide.hidden = !($("show-guide").checked && frame === null);
  drawDecal();
  say("");
}

// Painting: a stroke is drawn whole on its own canvas, then laid on the paint at the
// chosen opacity, so that its overlapping segments do not darken each other.
function canvasPoint(event) {
  const box = paint.getBoundingClientRect();
  return { x: (event.clientX - box.left) * paint.width / box.width, y: (event.clientY - box.top) * paint.height / box.height };
}

function remember() {
  undoStack.push(paintContext.getImageData(0, 0, paint.width, paint.height));
  if (undoStack.length > 50) undoStack.shift();
  redoStack = [];
}

paint.addEventListener("pointerdown", (event) => {
  paint.setPointerCapture(event.pointerId);
  const eraser = $("tool").value === "eraser";
  drawing = { last: canvasPoint(event), eraser };
  strokeContext.clearRect(0, 0, stroke.width, stroke.height);
  strokeContext.strokeStyle = strokeContext.fillStyle = eraser ? "#ffffff" : $("colour").value;
  strokeContext.lineWidth = Number($("size").value);
  strokeContext.lineCap = strokeContext.lineJoin = "round";
  stroke.style.opacity = eraser ? 0.5 : Number($("opacity").value) / 100;
  strokeContext.beginPath();
  strokeContext.arc(drawing.last.x, drawing.last.y, strokeContext.lineWidth / 2, 0, 2 * Math.PI);
  strokeContext.fill();
});

paint.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const point = canvasPoint(event);
  strokeContext.beginPath();
  strokeContext.moveTo(drawing.last.x, drawing.last.y);
  strokeContext.lineTo(point.x, point.y);
  strokeContext.stroke();
  drawing.last = point;
});

function endStroke() {
  if (!drawing) return;
  remember();
  paintContext.save();
  paintContext.globalAlpha = drawing.eraser ? 1 : Number($("opacity").value) / 100;
  paintContext.globalCompositeOperation = drawing.eraser ? "destination-out" : "source-over";
  paintContext.drawImage(stroke, 0, 0);
  paintContext.restore();
  strokeContext.clearRect(0, 0, stroke.width, stroke.height);
  drawing = null;
  save();
}
paint.addEventListener("pointerup", endStroke);
paint.addEventListener("pointercancel", endStroke);

function restore(from, to) {
  if (!from.length) return;
  to.push(paintContext.getImageData(0, 0, paint.width, paint.height));
  paintContext.putImageData(from.pop(), 0, 0);
  save();
}
$("undo").addEventListener("click", () => restore(undoStack, redoStack));
$("redo").addEventListener("click", () => restore(redoStack, undoStack));
$("clear").addEventListener("click", () => { remember(); paintContext.clearRect(0, 0, paint.width, paint.height); save(); });
$("show-guide").addEventListener("change", () => { guide.hidden = !($("show-guide").checked && frame === null); });

// The paint is kept where the command line reads it, after every change.
function save() {
  const target = canvasQuery();
  saving = saving.then(() => new Promise((resolve) => paint.toBlob(resolve, "image/png")))
    .then((blob) => api("/api/paint", { query: target, method: "POST", body: blob }))
    .then(() => say("paint saved"), (error) => say(error.message));
  return saving;
}

// A decal: a PNG moved by dragging, scaled and turned by the sliders, then placed.
function drawDecal() {
  decalContext.clearRect(0, 0, decal.width, decal.height);
  decal.classList.toggle("active", decalImage !== null);
  if (!decalImage) return;
  decalContext.save();
  decalContext.translate(decalAt.x, decalAt.y);
  decalContext.rotate(Number($("decal-rotation").value) * Math.PI / 180);
  const scale = Number($("decal-scale").value) / 100;
  decalContext.scale(scale, scale);
  decalContext.drawImage(decalImage, -decalImage.width / 2, -decalImage.height / 2);
  decalContext.restore();
}
$("decal-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  decalImage = await loadImage(URL.createObjectURL(file));
  decalAt = { x: decal.width / 2, y: decal.height / 2 };
  $("decal-place").disabled = false;
  drawDecal();
});
for (const id of ["decal-scale", "decal-rotation"]) $(id).addEventListener("input", drawDecal);
decal.addEventListener("pointerdown", (event) => { decal.setPointerCapture(event.pointerId); dragging = canvasPoint(event); });
decal.addEventListener("pointermove", (event) => {
  if (!dragging) return;
  const point = canvasPoint(event);
  decalAt = { x: decalAt.x + point.x - dragging.x, y: decalAt.y + point.y - dragging.y };
  dragging = point;
  drawDecal();
});
decal.addEventListener("pointerup", () => { dragging = null; });
$("decal-place").addEventListener("click", () => {
  remember();
  paintContext.drawImage(decal, 0, 0);
  decalImage = null;
  $("decal-place").disabled = true;
  $("decal-file").value = "";
  drawDecal();
  save();
});

// Which canvas: the embedded face, or the frame the scrubber is on.
for (const choice of document.querySelectorAll("input[name=canvas]")) {
  choice.addEventListener("change", async () => {
    await saving;
    const onFrame = choice.value === "frame" && choice.checked;
    $("scrubber").disabled = !onFrame;
    frame = onFrame ? Number($("scrubber").value) : null;
    await loadCanvas().catch((error) => say(error.message));
  });
}
$("scrubber").addEventListener("input", () => { $("frame-number").textContent = $("scrubber").value; });
$("scrubber").addEventListener("change", async () => {
  await saving;
  frame = Number($("scrubber").value);
  await loadCanvas().catch((error) => say(error.message));
});

function paintSettings() { return { lock: $("lock").value, occlusion: $("occlusion").value }; }

$("preview").addEventListener("click", async () => {
  try {
    await saving;
    say("previewing…");
    const { count } = await api("/api/preview", { query: { ...canvasQuery(), ...paintSettings() }, method: "POST" });
    const stamp = Date.now();
    $("previews").replaceChildren(...Array.from({ length: count }, (_, n) => {
      const shown = new Image();
      shown.src = url("/api/preview", { n, t: stamp });
      shown.alt = `preview ${n}`;
      return shown;
    }));
    say("preview ready");
  } catch (error) { say(error.message); }
});

$("render").addEventListener("click", async () => {
  try {
    await saving;
    const settings = { ...paintSettings(), codec: $("codec").value, layer_only: $("layer-only").checked,
                       name: $("output-name").value.trim() };
    await api("/api/render", { query: canvasQuery(), method: "POST", body: JSON.stringify(settings) });
    $("render-progress").hidden = false;
    $("download").hidden = $("rendered").hidden = true;
    say("rendering…");
    follow();
  } catch (error) { say(error.message); }
});

async function follow() {
  const { render } = await api("/api/state");
  $("render-progress").max = render.total || 1;
  $("render-progress").value = render.done;
  if (render.running) { setTimeout(follow, 400); return; }
  if (render.error) { say(render.error); return; }
  say(`rendered: ${render.result}`);
  if (render.result.includes("%")) return;  // an image sequence: its frames are in the renders folder
  const address = url("/api/file", { path: render.result });
  $("rendered").src = address;
  $("rendered").hidden = false;
  Object.assign($("download"), { href: address, hidden: false });
  $("download").setAttribute("download", render.result);
}

async function start() {
  const state = await api("/api/state");
  $("video-name").textContent = state.video;
  if (!state.ready) {
    $("extracting").hidden = false;
    $("extract-progress").max = state.extract.total || 1;
    $("extract-progress").value = state.extract.done;
    if (state.extract.error) { say(state.extract.error); return; }
    setTimeout(start, 500);
    return;
  }
  $("extracting").hidden = true;
  $("workspace").hidden = false;
  $("scrubber").max = state.frames - 1;
  await loadCanvas();
  document.body.dataset.ready = "true";
}
start().catch((error) => say(error.message));
